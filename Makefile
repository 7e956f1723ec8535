# Jobline developer commands. `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := shared:functions/api:functions/worker:local
# sam build needs the Lambda runtime's interpreter (python3.12) on PATH.
PY312_DIR := $(shell for p in "$$(python3.12 -c 'import sys; print(sys.prefix)' 2>/dev/null)" "$$(pyenv prefix 3.12 2>/dev/null)"; do [ -x "$$p/bin/python3.12" ] && { echo "$$p/bin"; break; }; done)

.PHONY: run test lint format pytest bench build validate requirements clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[api,dev]'
	@touch $(STAMP)

## run: the whole service locally (moto server + API on :8000 + worker poller). Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/python -m jobline_local

## test: linters, type checks and every test.
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict functions shared
	$(BIN)/cfn-lint template.yaml

pytest: $(STAMP)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## build / validate: SAM, from a separate tool venv (aws-sam-cli is large and pins its own deps).
.venv-sam/.installed:
	@test -x .venv-sam/bin/python || $(PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install --quiet aws-sam-cli
	@touch $@

validate: .venv-sam/.installed $(STAMP)
	.venv-sam/bin/sam validate --lint
	$(BIN)/cfn-lint template.yaml

build: .venv-sam/.installed
	@test -n "$(PY312_DIR)" || (echo "sam build needs python3.12 on PATH" >&2; exit 1)
	PATH="$(PY312_DIR):$$PATH" .venv-sam/bin/sam build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
