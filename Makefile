# The two commands: `make run` and `make test`. Both bootstrap .venv idempotently.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.algostack-installed
PIP_FLAGS ?= --disable-pip-version-check -q

.PHONY: run test lint typecheck unit bench clean venv

venv: $(STAMP)

# Re-install only when pyproject.toml changes; a second `make test` skips straight to the tests.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/algostack run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

clean:
	rm -rf $(VENV) .algostack build *.egg-info src/*.egg-info
