# Two commands: `make test` and `make demo`. Each (re)creates .venv only when
# pyproject.toml changed since the last install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo proto lint type bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

demo: $(STAMP)
	$(BIN)/python -m examples.fx_managed

proto: $(STAMP)
	$(BIN)/python tools/protogen.py

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# The long fuzz run (not in `make test`): FUZZ_EXAMPLES inputs per surface (host and served
# plugin, on each server kind), figures written to FUZZ_REPORT (.md and .json) for the docs.
FUZZ_EXAMPLES ?= 100000
FUZZ_REPORT ?= docs/fuzz-figures.md
fuzz: $(STAMP)
	PLUGIN_DI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PLUGIN_DI_FUZZ_REPORT=$(FUZZ_REPORT) \
		$(BIN)/pytest tests/adversarial/test_fuzz.py -p no:randomly --timeout=0

clean:
	rm -rf $(VENV)
