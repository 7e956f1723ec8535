# Jobline developer commands. `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every folder that holds importable code, declared once: `make` puts them on the venv's path
# (a .pth file), so python, pytest and the tools import the same modules as Lambda does; mypy
# reads the same list as MYPYPATH.
SOURCE_ROOTS := shared functions/api functions/worker functions/ingest functions/dead_letters local tools
space := $(subst ,, )
export MYPYPATH := $(subst $(space),:,$(SOURCE_ROOTS) clients/python/src)
# sam build needs the Lambda runtime's interpreter (python3.12) on PATH.
PY312_DIR := $(shell for p in "$$(python3.12 -c 'import sys; print(sys.prefix)' 2>/dev/null)" "$$(pyenv prefix 3.12 2>/dev/null)"; do [ -x "$$p/bin/python3.12" ] && { echo "$$p/bin"; break; }; done)

.PHONY: run test lint format pytest unit integration contract bench build validate requirements clean redrive openapi

$(STAMP): pyproject.toml clients/python/pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[api,dev]'
	$(BIN)/python -m pip install --quiet -e clients/python
	@$(BIN)/python -c 'import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "jobline-source-roots.pth").write_text("".join(str(pathlib.Path(root).resolve()) + "\n" for root in sys.argv[1:]))' $(SOURCE_ROOTS)
	@touch $(STAMP)

## run: the whole service locally (moto server + API on :8000 + worker poller). Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/python -m jobline_local

## redrive: move messages from a dead-letter queue back to its queue, bounded and rate-limited.
##   make redrive [SOURCE=dlq-url-or-name] [TARGET=queue-url-or-name] [MAX=100] [RATE=10] [LOCAL=0]
##   Default: make run's jobs DLQ -> jobs queue; LOCAL=0 uses the JOBLINE_* / AWS_* variables instead.
LOCAL ?= 1
redrive: $(STAMP)
	$(BIN)/python -m jobline_tools.redrive $(if $(filter 1,$(LOCAL)),--local) \
		$(if $(SOURCE),--source '$(SOURCE)') $(if $(TARGET),--target '$(TARGET)') \
		$(if $(MAX),--max $(MAX)) $(if $(RATE),--rate $(RATE))

## openapi: write docs/openapi.json, the API's OpenAPI document (a test fails when it is stale).
openapi: $(STAMP)
	$(BIN)/python -m jobline_api.openapi docs/openapi.json

## test: linters, type checks and every test. unit / integration / contract: one suite each.
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(SOURCE_ROOTS) clients/python/src bench tests
	$(BIN)/cfn-lint template.yaml

pytest: $(STAMP)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

unit integration contract: $(STAMP)
	$(BIN)/python -m pytest tests/$@

## bench: every performance figure of issue 4 next to its target and baseline (cold starts, AWS
##   calls per job, batch concurrency, throughput, build size); fails when a target is missed.
##   A few minutes; docs/benchmarks.md explains each figure. BENCH_ARGS="--runs 15 --importtime".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

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
