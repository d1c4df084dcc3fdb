# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
VENDOR := siyu/web/static/vendor

.PHONY: demo test install assets browser lint typecheck pytest bench-tiny clean

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
	$(BIN)/siyu demo

lint: install
	$(BIN)/ruff check siyu bench tests migrations
	$(BIN)/ruff format --check siyu bench tests migrations

typecheck: install
	$(BIN)/mypy

# Two workers (the CI machine has two cores); a test file stays on one worker so its module fixtures
# are built once. The slowest tests are listed so a slow CI run says where its time went.
pytest: install assets browser
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

bench-tiny: install
	$(BIN)/siyu bench import --size tiny --json
	$(BIN)/siyu bench lookup --size tiny --json
	$(BIN)/siyu bench scan --size tiny --json
	$(BIN)/siyu bench segments --size tiny --json
	$(BIN)/siyu bench dispatch --size tiny --json
	$(BIN)/siyu bench orders --size tiny --json
	$(BIN)/siyu bench redeem --size tiny --json $(if $(SIYU_TEST_DATABASE_URL),--database $(SIYU_TEST_DATABASE_URL))
	$(BIN)/siyu bench analytics --size tiny --json

test: lint typecheck pytest bench-tiny

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .mypy_cache .ruff_cache .pytest_cache
