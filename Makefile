# tcplab: two commands do all the set-up on a fresh Debian machine (as root).
#   make demo   installs everything, then runs the main job
#   make test   installs everything, then runs the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
TCPLAB := $(VENV)/bin/tcplab

.PHONY: setup demo test lint bench clean

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) out build *.egg-info
