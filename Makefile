# One target per habit. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
ESTATE ?= examples/estates/demo.yaml

.PHONY: setup demo test test-slow lint bench synth clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,sandbox,dev,infra]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/drctl sandbox demo --estate $(ESTATE)

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: setup
	$(BIN)/python -m bench.run

# The CDK app, offline (no AWS call, no Docker): templates + Lambda packages in cdk.out/.
INFRA_CONFIG ?= infra/config.example.yaml
synth: setup
	$(BIN)/python -m infra.app --config $(INFRA_CONFIG) --outdir cdk.out

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
