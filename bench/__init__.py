"""Jobline's benchmarks (`make bench`): cold start, AWS calls per job, batch concurrency,
throughput and package size, each measured against a floor or a reference in the same run."""
