# The two commands: `make demo` and `make test`. Both need only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
DEMO_AWS_PORT ?= 5000

.PHONY: demo test lint venv bench clean editor

# Every interpreter started here (test workers, the tests that run manage.py, the
# demo's processes) reuses the modules compiled by the first, even where the
# environment asks Python not to keep them: compiling Django, DRF and boto3 again
# costs each interpreter over a second.
export PYTHONDONTWRITEBYTECODE :=

# Modules are compiled when first imported (most of the embedded AWS's never are),
# not all at install. What is installed is marked by a stamp per extra: the demo needs the runtime and
# the embedded AWS only; the tests and linters need `dev`, which includes the demo.
DEMO_INSTALLED := $(VENV)/.demo-installed
DEV_INSTALLED := $(VENV)/.dev-installed
# Links in the demo's emails point at the demo itself.
SITE_URL ?= http://127.0.0.1:$(PORT)

$(DEMO_INSTALLED): pyproject.toml
	@echo "Installing iamportal and the embedded AWS into $(VENV)/ (first run: about a minute)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[demo]' --no-compile
	touch $@

$(DEV_INSTALLED): pyproject.toml
	@echo "Installing iamportal with its test and lint tools into $(VENV)/ (first run: about two minutes)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]' --no-compile
	touch $@ $(DEMO_INSTALLED)

venv: $(DEV_INSTALLED)

# A fresh demo every time: the embedded AWS keeps no state, so neither does its database.
# It runs as production would (DEBUG off: iamportal's own error pages) on plain HTTP
# on loopback, with a signing key made for this run and emails printed, not sent.
demo: $(DEMO_INSTALLED)
	mkdir -p .demo && rm -f .demo/demo.sqlite3*
	env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
	  DEBUG=false SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(48))') \
	  SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false \
	  EMAIL_BACKEND=console SITE_URL='$(SITE_URL)' \
	  DATABASE_URL=sqlite:///$(CURDIR)/.demo/demo.sqlite3 \
	  AWS_ENDPOINT_URL=http://127.0.0.1:$(DEMO_AWS_PORT) \
	  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
	  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	  AWS_REGION=us-east-1 IAMPORTAL_REGIONS=us-east-1 \
	  IAMPORTAL_ORG_ACCOUNT_ID=123456789012 \
	  IAMPORTAL_DEMO_FEDERATION=true IAMPORTAL_EMBEDDED_AWS=true \
	  IAMPORTAL_CONFIG_AGGREGATOR=acme-config IAMPORTAL_DEMO_CONFIG=true \
	  IAMPORTAL_FEDERATION_URL=http://127.0.0.1:$(PORT)/demo-federation/ \
	  PORT=$(PORT) DEMO_AWS_PORT=$(DEMO_AWS_PORT) \
	  $(BIN)/python manage.py demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# Every core by default; PYTEST_WORKERS=0 runs the tests in one process.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
# mypy (one core) runs beside the tests; the first failure's exit status is make's,
# the tests' first, so pytest's "no tests ran" (5) is never hidden.
test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy . > $(VENV)/mypy.out 2>&1 & mypy=$$!; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy; typed=$$?; cat $(VENV)/mypy.out; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$typed

# The policy editor's bundle is committed; rebuild it (Node.js and npm) after
# changing iamportal/editor/ or its lock file.
editor:
	cd iamportal/editor && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
