# The two commands of the README. Both set up .venv first (idempotent, ~2 min the first time).
PYTHON ?= python3
VENV ?= .venv
# CPU machines take the local CPU torch wheel; on a GPU cluster: make setup TORCH_CONSTRAINTS=
TORCH_CONSTRAINTS ?= -c constraints-cpu.txt
PAPER ?= bulat2019
TABLE ?= 1
PROFILE ?= proxy

.PHONY: run test setup testbed dashboard gpu-wheels
# Trains the table at PROFILE, measures its models (structure: no training, seconds a row), prints the comparison.
run: setup
	$(VENV)/bin/repro run --paper $(PAPER) --table $(TABLE) --profile $(PROFILE)
	$(VENV)/bin/repro run --paper $(PAPER) --table $(TABLE) --profile structure --quiet
	$(VENV)/bin/repro compare --paper $(PAPER) --table $(TABLE) --profile $(PROFILE)

# What the results database holds, in a browser (README: Dashboard).
dashboard: setup
	$(VENV)/bin/streamlit run dashboard/app.py --browser.gatherUsageStats false

# The tests start a real SLURM cluster and PostgreSQL server themselves (tests/conftest.py) and stop them at the end;
# two pytest-xdist workers, one per core.
test: setup testbed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup

# Installs what those services run, from Debian's packages (measured: 14 s for SLURM, munge, slurmdbd and MariaDB; a no-op
# when all are there, or when not root, where their tests skip): jobs/testbed/README.md
testbed:
	bash jobs/testbed/install.sh

# Wheels of what a lent GPU machine lacks (SQLAlchemy, the version installed here, for its Python 3.12), into .whl/
# for jobs/gpu-check.sh (README: Kernels, GPU).
gpu-wheels: setup
	$(VENV)/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl "sqlalchemy==$$($(VENV)/bin/python -c 'import sqlalchemy; print(sqlalchemy.__version__)')"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py constraints-cpu.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(TORCH_CONSTRAINTS) -e '.[test,dashboard]'
	touch $@
