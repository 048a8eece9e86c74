# Two commands: `make test` and `make demo` (and `make docs`: the documentation site;
# `make conformance`: the whole Connect conformance suite, see docs/interop.md). Each
# (re)creates .venv only when pyproject.toml changed since the last install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo proto lint type bench conformance fuzz clean docs docs-serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The multi-host tests run against a real redis-server: Debian's package, installed when
# missing and we are root (as on CI). Without it they are skipped (they fail under CI=true).
REDIS_SERVER := command -v redis-server >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
	echo "redis-server is missing (apt-get install redis-server): multi-host tests skipped"

test: $(STAMP)
	$(REDIS_SERVER)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) docs
	$(BIN)/pytest; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# The documentation site (mkdocs.yml): built into site/ with --strict, so a broken link, a
# missing page or a docstring mkdocstrings cannot render fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

demo: $(STAMP)
	$(BIN)/python -m examples.fx_managed

proto: $(STAMP)
	$(BIN)/python tools/protogen.py

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# Every configuration of conformance/run.py, each run bounded by `timeout` (CONFORMANCE_TIMEOUT
# seconds); the suite is ../shared/conformance, or CONFORMANCE_DIR.
CONFORMANCE_TIMEOUT ?= 1200
conformance: $(STAMP)
	$(BIN)/python -m conformance.run --timeout $(CONFORMANCE_TIMEOUT)

# The long fuzz run (not in `make test`): FUZZ_EXAMPLES inputs per surface (host and served
# plugin, on each listener kind), figures written into FUZZ_REPORT between its markers, and
# as JSON to fuzz-figures.json beside it.
FUZZ_EXAMPLES ?= 100000
FUZZ_REPORT ?= docs/security.md
fuzz: $(STAMP)
	PLUGIN_DI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PLUGIN_DI_FUZZ_REPORT=$(FUZZ_REPORT) \
		$(BIN)/pytest tests/adversarial/test_fuzz.py -p no:randomly --timeout=0

clean:
	rm -rf $(VENV)
