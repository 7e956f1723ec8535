"""Jobline: the domain of a serverless job service (jobs, their state machine, storage and queue ports)."""
