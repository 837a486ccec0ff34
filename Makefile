# Baton: the two commands are `make up` (local stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Linters live in their own venv: checkov pins boto3/botocore/packaging below chalice's and moto's.
LINT_VENV  := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
STAGE ?= dev

.PHONY: up test test-fast test-browser venv bootstrap-admin bench clean package lint-infra openapi fuzz

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"   # chalice 1.34 requires pip<26.3
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)
	$(MAKE) --no-print-directory cli

venv: $(STAMP)

$(LINT_STAMP): requirements-lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet -r requirements-lint.txt
	touch $(LINT_STAMP)

## Set everything up and run the local stack (moto + API + orchestration + agents). Its data is saved in
## .baton/state/ when it stops and restored when it starts; FRESH=1 starts empty (the saved state is then
## replaced when it stops).
up: $(STAMP)
	$(PY) -m chalicelib.local.stack $(if $(filter 1 yes true,$(FRESH)),--fresh)

# pytest over the given tiers; its exit 5, "no tests collected", is a failure here.
PYTEST_TIERS = $(PY) -m pytest -q -p no:cacheprovider $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$status

## Set everything up and run every tier: unit, service, api, e2e, browser, fuzz, infra (tests/conftest.py says what
## each holds), in two pytest processes so that both cores work: browser, fuzz and infra (Chromium and schemathesis
## against local stacks of their own, cfn-lint, checkov, chalice package) beside the others; their report is
## printed after. The browser tier needs /usr/bin/chromium (.ci/run installs it; BATON_SKIP_BROWSER=1 skips it).
test: $(STAMP)
	@tools_log=$$(mktemp); ( $(call PYTEST_TIERS,tests/browser tests/fuzz tests/infra) ) > $$tools_log 2>&1 & tools=$$!; \
	( $(call PYTEST_TIERS,tests --ignore=tests/browser --ignore=tests/fuzz --ignore=tests/infra) ); status=$$?; \
	wait $$tools; tools_status=$$?; echo "--- tests/browser, tests/fuzz and tests/infra, run beside the tiers above:"; \
	cat $$tools_log; rm -f $$tools_log; [ $$status -eq 0 ] && [ $$tools_status -eq 0 ]

## The dashboard in Chromium (Playwright) against a local stack of its own; screenshots of each view in out/browser/.
test-browser: $(STAMP)
	$(call PYTEST_TIERS,tests/browser)

## The edit loop: unit + service (no network, in-process moto), well under a minute.
test-fast: $(STAMP)
	$(call PYTEST_TIERS,tests/unit tests/service)

## Regenerate docs/openapi.json from the routes and models (a test fails when it is stale).
openapi: $(STAMP)
	$(PY) -m chalicelib.api.openapi docs/openapi.json

## schemathesis against the local stack, every operation and default check (also part of `make test`).
fuzz: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -s tests/fuzz

## Print each performance figure next to its design minimum (bench/run_all.py: AWS calls per endpoint,
## cold import, claim/progress at queue depth, stage-hop latency and Step Functions transitions, cost
## per 1,000 task-stages). Measures and prints; exits 2 if any request scanned the table.
bench: $(STAMP)
	$(PY) bench/run_all.py

## The scale run: 200 tasks x 4 stages, 20 concurrent agents on the local stack (minutes). Sizes:
## BENCH_SCALE_TASKS, BENCH_SCALE_AGENTS, BENCH_SCALE_STAGES (or bench/scale.py --help).
.PHONY: bench-scale
bench-scale: $(STAMP)
	$(PY) bench/scale.py

## Render the deployable template: out/merge.json, then chalice package -> out/sam.json + out/deployment.zip,
## for Lambda python3.13 on x86_64 with wheels for that runtime, whatever Python runs it (RUNTIME=python3.12 also works).
package: $(STAMP)
	$(PY) infra/build_template.py --stage $(STAGE) --out out $(if $(RUNTIME),--runtime $(RUNTIME))

## Package, then lint the template: cfn-lint (no errors, no warnings) and checkov (no failed check).
lint-infra: package $(LINT_STAMP)
	$(LINT_VENV)/bin/cfn-lint out/sam.json
	$(LINT_VENV)/bin/checkov -f out/sam.json --framework cloudformation --skip-download --compact --quiet

clean:
	rm -rf $(VENV) $(LINT_VENV) out .pytest_cache .hypothesis

## Write .venv/bin/baton, the CLI (python -m chalicelib.cli, from any directory).
cli: $(STAMP)
	@printf '%s\n' '#!/bin/sh' \
	  'PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"; export PYTHONPATH' \
	  'exec "$$(dirname "$$0")/python" -m chalicelib.cli "$$@"' > $(VENV)/bin/baton
	@chmod +x $(VENV)/bin/baton
