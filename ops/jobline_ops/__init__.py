"""Operator tools that run against real AWS as well as `make run`'s local stack (`make redrive`)."""
