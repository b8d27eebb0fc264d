# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs bench clean pg browser

# torch first, pinned to the CPU wheel on this disk: a bare `torch` would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/normnas demo

test: $(STAMP) pg browser
	$(PY) -m pytest -rs

# best effort: the PostgreSQL tests need Debian's server (initdb, pg_ctl); without it they skip
pg:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
		|| (apt-get install -y -qq postgresql >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null 2>&1 \
		|| echo "note: postgresql not installed; its tests will skip") || true

# best effort: the HTML report's tests open it in Debian's headless Chromium; without it they skip
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| (apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "note: chromium not installed; the report's browser tests will skip") || true

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/mypy  # src/normnas, configured in pyproject.toml [tool.mypy]

# the site, strictly (a broken link or a bad reference fails), then every example it shows,
# run from a temporary folder against the installed package (tests/docs)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site
	$(PY) -m pytest -m docs tests/docs -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
