# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
VENDOR := siyu/web/static/vendor

.PHONY: demo test install assets browser lint typecheck pytest bench-tiny fuzz soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Copy the npm packages the console serves into the static folder (not committed).
$(VENDOR)/.copied: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	cp node_modules/@tabler/core/dist/css/tabler.min.css $(VENDOR)/
	cp node_modules/@tabler/core/dist/js/tabler.min.js $(VENDOR)/
	touch $@

assets: $(VENDOR)/.copied

# Browser tests drive Debian's Chromium; a CJK font keeps Chinese readable in screenshots.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei"; then \
	  echo "installing chromium and fonts-wqy-microhei (Debian packages)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; \
	fi

demo: install assets
	SIYU_FAKE_WECOM=$${SIYU_FAKE_WECOM:-true} $(BIN)/siyu demo

lint: install
	$(BIN)/ruff check siyu bench tests migrations soak
	$(BIN)/ruff format --check siyu bench tests migrations soak

typecheck: install
	$(BIN)/mypy

# Two workers (the CI machine has two cores); a test file stays on one worker so its module fixtures
# are built once. The slowest tests are listed so a slow CI run says where its time went.
pytest: install assets browser
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25

bench-tiny: install
	$(BIN)/siyu bench import --size tiny --json
	$(BIN)/siyu bench lookup --size tiny --json
	$(BIN)/siyu bench scan --size tiny --json
	$(BIN)/siyu bench segments --size tiny --json
	$(BIN)/siyu bench dispatch --size tiny --json
	$(BIN)/siyu bench orders --size tiny --json
	$(BIN)/siyu bench redeem --size tiny --json $(if $(SIYU_TEST_DATABASE_URL),--database $(SIYU_TEST_DATABASE_URL))
	$(BIN)/siyu bench analytics --size tiny --json
	$(BIN)/siyu bench wecom --size tiny --json $(if $(SIYU_TEST_DATABASE_URL),--database $(SIYU_TEST_DATABASE_URL))
	$(BIN)/siyu bench cluster --size tiny --json $(if $(SIYU_TEST_DATABASE_URL),--database $(SIYU_TEST_DATABASE_URL))

test: lint typecheck pytest bench-tiny

# Longer fuzzing than the suite's few examples (docs/fuzzing.md): every API operation through
# schemathesis, the importer, the segment compiler and the WeCom callback through hypothesis.
fuzz: install
	SIYU_FUZZ_EXAMPLES=$${SIYU_FUZZ_EXAMPLES:-50} $(BIN)/pytest -q -p no:cacheprovider tests/fuzz

# Load and fault runs against real processes on PostgreSQL + Redis (docs/operations.md, "Load, faults and
# scaling"): 5 minutes of mixed load, then kill -9 of a worker, the scheduler leader and an API during a
# 200,000-recipient broadcast, and a killed import. SOAK_SECONDS / SOAK_RECIPIENTS shorten it.
soak: install
	SIYU_TEST_DATABASE_URL=$${SIYU_TEST_DATABASE_URL:?set SIYU_TEST_DATABASE_URL} \
	SIYU_TEST_BROKER_URL=$${SIYU_TEST_BROKER_URL:?set SIYU_TEST_BROKER_URL} \
	$(BIN)/python -m soak.run --seconds $${SOAK_SECONDS:-300} --recipients $${SOAK_RECIPIENTS:-200000}

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .mypy_cache .ruff_cache .pytest_cache
