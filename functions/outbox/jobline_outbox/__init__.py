"""Jobline's outbox: the dispatcher (triggered by the jobs table's stream) sends the message of every
job a write left queued; the recovery function re-reads batches the dispatcher gave up on."""
