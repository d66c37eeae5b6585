# paper-assistant: `make start` installs and starts the assistant; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install start test lint clean chromium

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing paper-assistant (the first time this builds llama-cpp-python: a few minutes)" >&2
	@# setuptools tells every editable install that a folder named like the package could shadow it: not a packaging problem
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

start: install
	$(BIN)/paper-assistant serve

# The UI tests drive Debian's Chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "the UI tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: install chromium
	$(BIN)/python -m pytest -ra

lint: install
	$(BIN)/ruff check assistant tests evals benchmarks harness

clean:
	rm -rf $(VENV) .test-cache
