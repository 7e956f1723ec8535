"""Jobline's ingest function: job submissions from other systems (raw, SNS, EventBridge) on the
ingest queue, through the same validation and service as `POST /jobs`."""
