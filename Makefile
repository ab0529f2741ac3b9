# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'  # every role's extra: the whole service and its tests
	touch $(STAMP)

run: install
	$(BIN)/fashion-tagger up

lint: install
	$(BIN)/ruff check .

# Browser tests drive Debian's Chromium; as root it is installed when missing. Without it
# (not root, or no package mirror) those tests skip and say why; the rest still run.
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium could not be installed: the browser tests will be skipped"

test: install lint chromium
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks all

clean:
	rm -rf $(VENV) var runs .pytest_cache
