# The two commands of the README. Both set up .venv first (idempotent, ~2 min the first time).
PYTHON ?= python3
VENV ?= .venv
# CPU machines take the local CPU torch wheel; on a GPU cluster: make setup TORCH_CONSTRAINTS=
TORCH_CONSTRAINTS ?= -c constraints-cpu.txt
PAPER ?= bulat2019
TABLE ?= 1
PROFILE ?= proxy

.PHONY: run test setup
run: setup
	$(VENV)/bin/repro run --paper $(PAPER) --table $(TABLE) --profile $(PROFILE)
	$(VENV)/bin/repro compare --paper $(PAPER) --table $(TABLE) --profile $(PROFILE)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py constraints-cpu.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(TORCH_CONSTRAINTS) -e '.[test,dashboard]'
	touch $@
