# make run: set up, then open chat-tui (make demo: with simulated users and an archive).
# make archive: an archive worker (history and search) for make run, until Ctrl+C.
# make test: set up, start the broker, lint, then every test, the fault suite included.
# make test-fast: only the tests that need no broker, in seconds: no broker start, no lint.
# make test-faults: only the fault suite.  make lint, make bench, make bench-quick, make clean.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NAME ?=
USER_FLAG := $(if $(NAME),--user $(NAME),)

.PHONY: install broker run demo archive test test-fast test-faults lint bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "chat-tui needs Python 3.11 or newer"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "python venv is missing: sudo apt-get install -y python3-venv" >&2; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

broker: $(STAMP)
	@PY=$(PY) bash scripts/broker.sh

run: broker
	$(VENV)/bin/chat-tui $(USER_FLAG)

demo: broker
	$(VENV)/bin/chat-tui demo $(USER_FLAG)

archive: broker
	$(VENV)/bin/chat-tui archive --verbose

lint: $(STAMP)
	$(VENV)/bin/ruff check chat_tui tests scripts bench
	$(VENV)/bin/ruff format --check chat_tui tests scripts bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench

test: broker lint
	$(PY) -m pytest

test-fast: $(STAMP)
	CHAT_TUI_TESTS_WITHOUT_BROKER=1 $(PY) -m pytest -m "not broker" -n auto -p no:cacheprovider

test-faults: broker
	$(PY) -m pytest -m faults -p no:cacheprovider

bench: broker
	$(PY) -m bench --full

bench-quick: broker
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
