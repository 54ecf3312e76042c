# NIXA: `make demo`, `make test`, `make bench`. Each bootstraps what it needs
# (scripts/bootstrap.sh: Debian packages, .venv, Node packages of the interop tests).

.PHONY: demo test bench venv

VENV := .venv
# Extra arguments: make test PYTEST_ARGS='-k store -x'; make bench BENCH_ARGS='--help'
PYTEST_ARGS ?=
BENCH_ARGS ?=

venv:
	@bash scripts/bootstrap.sh

demo: venv
	$(VENV)/bin/nixa demo

# Runs the suite twice: embedded (SQLite + in-process) and scale-out (PostgreSQL + Redis).
test:
	@bash scripts/test.sh $(PYTEST_ARGS)

bench: venv
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)
