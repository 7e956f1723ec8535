"""Build tooling: Lambda artifacts (`artifact.py`, run by `sam build` through the Makefile) and
the lock files (`lock.py` writes them, `lockfile.py` reads them for tests and the bench)."""
