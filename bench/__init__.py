"""Load benchmark of a running NIXA: `python -m bench.run --help` (or `make bench`)."""
