"""Jobline's HTTP API: FastAPI behind API Gateway HTTP API (payload 2.0) through Mangum."""
