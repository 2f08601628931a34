# The two commands: `make demo` and `make test`. Both need only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
DEMO_AWS_PORT ?= 5000

.PHONY: demo test lint venv bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# A fresh demo every time: the embedded AWS keeps no state, so neither does its database.
demo: venv
	mkdir -p .demo && rm -f .demo/demo.sqlite3*
	env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
	  DATABASE_URL=sqlite:///$(CURDIR)/.demo/demo.sqlite3 \
	  AWS_ENDPOINT_URL=http://127.0.0.1:$(DEMO_AWS_PORT) \
	  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
	  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	  AWS_REGION=us-east-1 IAMPORTAL_REGIONS=us-east-1 \
	  IAMPORTAL_ORG_ACCOUNT_ID=123456789012 \
	  IAMPORTAL_DEMO_FEDERATION=true \
	  IAMPORTAL_FEDERATION_URL=http://127.0.0.1:$(PORT)/demo-federation/ \
	  PORT=$(PORT) DEMO_AWS_PORT=$(DEMO_AWS_PORT) \
	  $(BIN)/python manage.py demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# Every core by default; PYTEST_WORKERS=0 runs the tests in one process.
PYTEST_WORKERS ?= auto
test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
