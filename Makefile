# The two commands: `make run` and `make test`. Both bootstrap .venv idempotently.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.algostack-installed
PIP_FLAGS ?= --disable-pip-version-check -q

.PHONY: run test lint typecheck bench clean venv tools lambdas drills

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION := 3.3.30

venv: $(STAMP)

# Re-install only when pyproject.toml changes; a second `make test` skips straight to the tests.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $(STAMP)

# checkov pins its own boto3 and clobbers python-hcl2's `hcl2` package: it gets a venv of its own.
$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV) || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) checkov==$(CHECKOV_VERSION)
	@touch $(CHECKOV_STAMP)

# Debian tools the tests use (CI runs as root on a Debian image); skipped when present.
# systemd-container (systemd-nspawn), mmdebstrap, sshd and git: the emulated AWS day's hosts.
tools: $(CHECKOV_STAMP)
	@missing=""; \
	for t in shellcheck:shellcheck chromium:chromium systemd-nspawn:systemd-container \
	  mmdebstrap:mmdebstrap sshd:openssh-server ssh-keygen:openssh-client git:git; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || test -x /usr/sbin/$${t%%:*} || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	    || echo "warning: could not install$$missing; the tests that need them fail and say so"; \
	fi

run: $(STAMP)
	$(BIN)/algostack run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The controller Lambda zips Terraform deploys (infra/build/<module>.zip, deterministic).
lambdas: $(STAMP)
	$(BIN)/algostack lambdas package

# The slowest tests are listed at the end: the whole run must stay under 30 minutes on 2 cores.
test: $(STAMP) tools lint typecheck lambdas
	$(BIN)/python -m pytest --durations=30 $(PYTEST_ARGS)

# Faults and bad input against real runs (also part of `make test`): tests/drills.
drills: $(STAMP)
	$(BIN)/python -m pytest -m drills tests/drills

bench: $(STAMP)
	@for f in bench/[a-z]*.py; do echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

clean:
	rm -rf $(VENV) .algostack build infra/build *.egg-info src/*.egg-info
