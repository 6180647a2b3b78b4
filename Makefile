# jobpulse: `make run` serves, `make test` runs every test, `make check` lints and type-checks,
# `make bench` measures.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test check bench run postgres brokers chromium clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

# Start the local PostgreSQL if it is installed and down (the PostgreSQL tests need it).
postgres:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
		for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

# Start Redis and RabbitMQ if they are installed and down (the executor integrations' tests).
brokers:
	@if command -v redis-server >/dev/null && ! (command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1); then \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true; \
	fi
	@if command -v rabbitmq-server >/dev/null && ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then \
		rabbitmq-server -detached || true; \
		for i in $$(seq 60); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done; \
	fi

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
chromium:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		apt-get install -y -qq chromium >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium) || true; \
	fi

test: $(STAMP) postgres brokers chromium
	$(BIN)/pytest

# The documentation site is built offline (no web fonts, no plugin that downloads) into ./site.
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

bench: $(STAMP) postgres
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		{ echo "make bench needs wrk (Debian package wrk)"; exit 1; }
	$(BIN)/python -m benchmarks

# Serve on ./jobpulse.db at http://$(HOST):$(PORT) (`make run PORT=8080 HOST=0.0.0.0`);
# the first start prints an admin key.
HOST ?= 127.0.0.1
PORT ?= 8000
run: $(STAMP)
	$(BIN)/jobpulse serve --host $(HOST) --port $(PORT) --database-url sqlite:///./jobpulse.db

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
