# Jobline developer commands. `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SAM translator's own venv (below): the transformed-template tests need it.
SAM_TRANSLATOR := .venv-sam-translator/.installed
# This Makefile's folder: `sam build` runs the build-<LogicalId> targets below from a copy of each
# resource's code folder, so paths to the repository's own files start here.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# Every folder that holds importable code, declared once: `make` puts them on the venv's path
# (a .pth file), so python, pytest and the tools import the same modules as Lambda does; mypy
# reads the same list as MYPYPATH.
SOURCE_ROOTS := shared job_types functions/api functions/worker functions/ingest functions/dead_letters functions/outbox local ops
space := $(subst ,, )
export MYPYPATH := $(subst $(space),:,$(SOURCE_ROOTS) clients/python/src)
# sam build needs the Lambda runtime's interpreter (python3.12) on PATH.
PY312_DIR := $(shell for p in "$$(python3.12 -c 'import sys; print(sys.prefix)' 2>/dev/null)" "$$(pyenv prefix 3.12 2>/dev/null)"; do [ -x "$$p/bin/python3.12" ] && { echo "$$p/bin"; break; }; done)

.PHONY: help run sam-events test lint format pytest unit integration contract soak bench build validate checkov lock clean redrive sweep openapi

## help: list the targets (each `##` comment of this Makefile).
help:
	@sed -n 's/^## \{0,1\}//p' $(MAKEFILE_LIST)

# The development virtualenv holds exactly requirements-dev.lock (hash-checked), then the project,
# the job types (job_types/pyproject.toml: their entry points) and the client, editable, without
# dependencies of their own (`make lock` rewrites the lock).
$(STAMP): pyproject.toml job_types/pyproject.toml clients/python/pyproject.toml requirements-dev.lock Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e . -e job_types -e clients/python
	@$(BIN)/python -m tools.source_roots $(SOURCE_ROOTS)
	@touch $(STAMP)

## lock: pin every dependency (with hashes) from pyproject.toml: requirements-dev.lock (this
##   virtualenv), shared/requirements.lock (the layer) and functions/api/requirements.lock (the
##   API function, less the layer). Needs the package index; docs/benchmarks.md says why three.
##   Existing pins are kept where they still fit; make lock UPGRADE="pydantic pydantic-core"
##   moves those (UPGRADE=:all: everything).
lock: $(STAMP)
	$(BIN)/python -m tools.lock $(if $(UPGRADE),--upgrade $(UPGRADE))
	$(MAKE) --no-print-directory $(STAMP)

## run: the whole service locally (moto server + API on :8000 + the template's event source
##   mappings, up to 4 invocations at once per queue). Ctrl-C stops it and saves the jobs to
##   .jobline-local/state.json; the next run restores them. make run [FRESH=1] starts clean.
##   docs/local-development.md has every setting (JOBLINE_LOCAL_*).
run: $(STAMP)
	JOBLINE_LOCAL_STATE_FILE="$${JOBLINE_LOCAL_STATE_FILE-$(ROOT)/.jobline-local/state.json}" \
		$(if $(filter 1,$(FRESH)),JOBLINE_LOCAL_FRESH=true) $(BIN)/python -m jobline_local

## sam-events: sample events naming a real job of the running `make run`, for `sam local invoke`
##   (submits an echo job as the events' caller, writes .jobline-local/events/*.json).
sam-events: $(STAMP)
	$(BIN)/python -m jobline_local.sam_events

## redrive: move messages from a dead-letter queue back to its queue, bounded and rate-limited.
##   make redrive [SOURCE=dlq-url-or-name] [TARGET=queue-url-or-name] [MAX=100] [RATE=10] [LOCAL=0]
##   Default: make run's jobs DLQ -> jobs queue; LOCAL=0 uses the JOBLINE_* / AWS_* variables instead.
LOCAL ?= 1
redrive: $(STAMP)
	$(BIN)/python -m jobline_ops.redrive $(if $(filter 1,$(LOCAL)),--local) \
		$(if $(SOURCE),--source '$(SOURCE)') $(if $(TARGET),--target '$(TARGET)') \
		$(if $(MAX),--max $(MAX)) $(if $(RATE),--rate $(RATE))

## sweep: send the message of every queued job the outbox never dispatched (after an outage of the
##   jobs queue longer than the stream's 24 h). make sweep [MIN_AGE=900] [MAX=1000] [DRY_RUN=1] [LOCAL=0]
sweep: $(STAMP)
	$(BIN)/python -m jobline_ops.sweep $(if $(filter 1,$(LOCAL)),--local) \
		$(if $(MIN_AGE),--min-age $(MIN_AGE)) $(if $(MAX),--max $(MAX)) \
		$(if $(filter 1,$(DRY_RUN)),--dry-run)

## openapi: write docs/openapi.json, the API's OpenAPI document (a test fails when it is stale).
openapi: $(STAMP)
	$(BIN)/python -m tools.openapi docs/openapi.json

## test: linters, type checks and every test. unit / integration / contract: one suite each.
test: lint pytest

## lint: ruff (lint and format check), mypy --strict on every Python folder, cfn-lint.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(SOURCE_ROOTS) clients/python/src tools bench tests
	$(BIN)/cfn-lint template.yaml

## pytest: every test, without the linters.
pytest: $(STAMP) $(SAM_TRANSLATOR)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

unit integration contract: $(STAMP) $(SAM_TRANSLATOR)
	$(BIN)/python -m pytest tests/$@

## soak: the fault-injection soak (tests/soak, part of `make test` too) once per seed, with its
##   invariant and fault tables.  make soak SEEDS="1 2 3"
SEEDS ?= 20261201 7 42
soak: $(STAMP)
	@for seed in $(SEEDS); do \
		JOBLINE_SOAK_SEED=$$seed $(BIN)/python -m pytest -s -q -p no:cacheprovider tests/soak || exit 1; \
	done

## bench: every performance figure of issue 4 next to its target and baseline (cold starts, AWS
##   calls per job, batch concurrency, throughput, build size); fails when a target is missed.
##   A few minutes; docs/benchmarks.md explains each figure. BENCH_ARGS="--runs 15 --importtime".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## format: ruff format and ruff's safe fixes.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## build / validate: SAM, from a separate tool venv (aws-sam-cli is large and pins its own deps).
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
export SAM_CLI_TELEMETRY := 0

.venv-sam/.installed: Makefile
	@test -x .venv-sam/bin/python || $(PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

# The SAM transform for tests/unit/test_transformed_template.py (tools/sam_transform.py):
# aws-sam-translator pins pydantic (~=2.13 in 1.115) below what the layer ships (2.14 imports
# faster: docs/benchmarks.md), so it lives in a venv of its own, like the SAM CLI and checkov.
SAM_TRANSLATOR_VERSION := 1.115.0
$(SAM_TRANSLATOR): Makefile
	@test -x .venv-sam-translator/bin/python || $(PYTHON) -m venv .venv-sam-translator
	.venv-sam-translator/bin/python -m pip install --quiet aws-sam-translator==$(SAM_TRANSLATOR_VERSION)
	@touch $@

## checkov: the template's security checks (skips are in template.yaml, each with its reason).
##   checkov pins old boto3/packaging releases, hence a venv of its own. --skip-download: no
##   calls to the vendor's API (guidelines, severities); the checks themselves are local.
.venv-checkov/.installed: Makefile
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

checkov: .venv-checkov/.installed
	.venv-checkov/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

validate: .venv-sam/.installed $(STAMP) checkov
	.venv-sam/bin/sam validate --lint
	$(BIN)/cfn-lint template.yaml

build: .venv-sam/.installed
	@test -n "$(PY312_DIR)" || (echo "sam build needs python3.12 on PATH" >&2; exit 1)
	PATH="$(PY312_DIR):$$PATH" .venv-sam/bin/sam build

## build-<LogicalId>: what `sam build` runs for each function and layer (BuildMethod: makefile),
##   from a copy of the resource's code folder, with ARTIFACTS_DIR set: the lock's wheels for
##   Lambda, the code, and unchecked-hash bytecode for every module (tools/artifact.py). The
##   job-types layer also ships job_types/pyproject.toml's entry points (a dist-info), and the
##   worker what only the handlers need (functions/worker/requirements.lock).
LAMBDA_PYTHON ?= $(if $(PY312_DIR),$(PY312_DIR)/python3.12,python3.12)
ARTIFACT = $(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set (sam build sets it))) \
	$(LAMBDA_PYTHON) -I $(ROOT)/tools/artifact.py --source .

build-SharedLayer:
	$(ARTIFACT) --target "$(ARTIFACTS_DIR)/python" --runtime-dir /opt/python --lock requirements.lock

build-JobTypesLayer:
	$(ARTIFACT) --target "$(ARTIFACTS_DIR)/python" --runtime-dir /opt/python --lock requirements.lock \
		--entry-points pyproject.toml

build-ApiFunction build-WorkerFunction build-LongWorkerFunction:
	$(ARTIFACT) --target "$(ARTIFACTS_DIR)" --lock requirements.lock

build-IngestFunction build-DeadLetterFunction build-OutboxFunction build-OutboxRecoveryFunction:
	$(ARTIFACT) --target "$(ARTIFACTS_DIR)"

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
