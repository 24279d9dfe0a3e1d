# FraudLab: `make lab` runs the whole lab offline, `make test` runs the tests.
# Both set up what they need first (.venv from requirements-dev.txt, node_modules from
# package.json, and the XGBoost 3.2-0 image environment the offline containers run in).

PYTHON ?= python3
PYTHON312 ?=
VENV := .venv
PY := $(VENV)/bin/python
IMAGE_ENV := .image-env/xgboost-3.2-0
CHECKOV_ENV := .tools/checkov
AWSCLI_ENV := .tools/awscli
SIZE ?= 100000

# Synth needs no credentials or network: never ask EC2 metadata, never send telemetry.
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_CLI_TELEMETRY := true
# The CDK CLI and jsii run on the Node package.json pins (node_modules/.bin/node): npx puts
# it first on the CLI's PATH, stacks/__init__.py points jsii at it.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup lab test synth cost local-up local-down bench clean

setup: $(VENV)/.installed node_modules/.installed $(IMAGE_ENV)/.installed $(CHECKOV_ENV)/.installed $(AWSCLI_ENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The image's Python 3.12 and package pins (localaws/runtime/image-*.txt), for the serving
# container and the Processing jobs offline.
$(IMAGE_ENV)/.installed: localaws/runtime/image-requirements.txt localaws/runtime/image-nodeps.txt localaws/runtime/image_env.py
	$(PYTHON) -m localaws.runtime.image_env build $(if $(PYTHON312),--python $(PYTHON312))

# checkov in a venv of its own: its pins (requirements-checkov.txt) would clash with the kit's.
$(CHECKOV_ENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_ENV)
	$(CHECKOV_ENV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

# The AWS CLI v1 (tests drive the local AWS with it, as a learner does); it bundles its own
# botocore and pins s3transfer below the kit's, hence a venv of its own.
$(AWSCLI_ENV)/.installed: requirements-awscli.txt
	$(PYTHON) -m venv $(AWSCLI_ENV)
	$(AWSCLI_ENV)/bin/pip install --quiet -r requirements-awscli.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lab: setup
	$(PY) -m localaws lab --size $(SIZE)

test: setup
	$(PY) -m pytest

# What the stacks and steps cost in a region (REGION=eu-west-1), before you deploy.
cost: setup
	PYTHONPATH=lab_scripts $(PY) -m labkit.cost $(if $(REGION),--region $(REGION))

synth: setup
	npx cdk synth --quiet --no-notices
	cfn-lint cdk.out/*.template.json

local-up: setup
	@mkdir -p .localaws
	@if [ -f .localaws/pid ] && kill -0 $$(cat .localaws/pid) 2>/dev/null; then echo "local AWS already running: source .localaws/env"; exit 0; fi; \
	rm -f .localaws/env; \
	nohup $(PY) -m localaws serve > .localaws/server.log 2>&1 & echo $$! > .localaws/pid; \
	for i in $$(seq 120); do [ -f .localaws/env ] && break; kill -0 $$(cat .localaws/pid) 2>/dev/null || break; sleep 0.5; done; \
	if [ -f .localaws/env ]; then cat .localaws/server.log; echo "now: source .localaws/env"; else cat .localaws/server.log; exit 1; fi

local-down:
	@if [ -f .localaws/pid ]; then \
	  pid=$$(cat .localaws/pid); kill $$pid 2>/dev/null || true; \
	  alive() { ps -o stat= -p $$pid 2>/dev/null | grep -qv Z; }; \
	  for i in $$(seq 100); do alive || break; sleep 0.1; done; \
	  if alive; then echo "local AWS (pid $$pid) still stopping: see .localaws/server.log"; exit 1; fi; \
	  rm -f .localaws/pid .localaws/env; echo "local AWS stopped"; \
	else echo "local AWS not running"; fi

bench: setup
	$(PY) -m bench

clean:
	rm -rf build cdk.out .pytest_cache .image-env .tools
