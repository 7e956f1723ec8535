"""The HTTP API over a fake service, one module per route group: every route, every status code,
every error as JSON."""
