# Baton: the two commands are `make up` (local stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test venv bootstrap-admin bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## Set everything up and run the local stack (moto + API + orchestration + agents).
up: $(STAMP)
	$(PY) -m chalicelib.local.stack

## Set everything up and run the tests (pytest's exit 5, "no tests collected", is a failure here).
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$status

## Print the AWS calls each endpoint makes (bench/roundtrips.py).
bench: $(STAMP)
	$(PY) bench/roundtrips.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
