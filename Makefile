# One target per habit. Every target sets itself up: a fresh clone needs only python3, node and npm.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CDK := node_modules/.bin/cdk
WHEELS_STAMP := build/wheels/.prefetched
# jsii (under aws-cdk-lib) prints a banner on every start because this machine's Node 20 is end-of-life; 22 or 24
# are preferred where available. The banner is silenced for Node 20 only.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install test lint demo synth bench deploy docs docs-serve package clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Lambda's wheels for its platform (arm64, Python 3.14), fetched once so that synth needs no network.
$(WHEELS_STAMP): $(STAMP) requirements.txt constraints.txt
	$(PY) -m jitr_cdk.bundling prefetch
	touch $@

install: $(STAMP) $(NODE_STAMP) $(WHEELS_STAMP)

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(VENV)/bin/jitr demo
	@echo
	$(VENV)/bin/jitr simulate --seed 7

synth: install
	$(CDK) synth --quiet --no-notices

bench: $(STAMP) $(WHEELS_STAMP)
	$(PY) -m benchmarks

# jitr as a package: the wheel (dist/jitr-VERSION-py3-none-any.whl) a team installs as jitr, jitr[cdk] or jitr[serve]
package: $(STAMP)
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir dist .

# The documentation site (mkdocs.yml, docs/): built strictly (a broken link or anchor fails), into the git-ignored
# site/. The reference pages are generated from the code by docs/gen_reference.py, a MkDocs hook.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000

# In a pipeline: `make deploy CI=true` (CI systems set CI=true themselves) deploys without the approval prompt;
# CONFIG=envs/prod.json picks a per-environment configuration file, STACK=JitrProd the stack's name. The stack's
# outputs are written to cdk-outputs.json for the next step (`jitr doctor`, say).
DEPLOY_CONTEXT := $(if $(CONFIG),--context jitr:configFile=$(CONFIG)) $(if $(STACK),--context jitr:stackName=$(STACK))
DEPLOY_FLAGS := --outputs-file cdk-outputs.json $(if $(filter true 1 yes,$(CI) $(JITR_YES)),--require-approval never --progress events --ci)

deploy: install
	$(CDK) deploy $(DEPLOY_CONTEXT) $(DEPLOY_FLAGS)

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .hypothesis site
