"""Jobline's dead-letter consumer: marks the jobs whose messages SQS dead-lettered."""
