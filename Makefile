# The two commands of the quick start: `make run` and `make test`.
# Both create .venv with Python 3.11 and install the project into it first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[stack,test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m devstack

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Lint, format and type checks; the files mypy checks and how strictly are in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .data
