PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint install demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/python -m compileall -q spurcore spurctld spurd spurcli
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check spurcore spurctld spurd spurcli tests benchmarks

test: lint
	$(BIN)/python -m compileall -q spurcore spurctld spurd spurcli
	$(BIN)/pytest -q tests

demo: $(STAMP)
	bash examples/demo.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
