"""Jobline's worker: an SQS-triggered Lambda (ReportBatchItemFailures) that runs jobs."""
