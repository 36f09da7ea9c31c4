# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test lint assets install dev-install migrate seed bench clean

run: install assets
	$(FLASK) db upgrade
	@$(FLASK) seed --demo
	@echo "Midas is serving on http://127.0.0.1:5000 (sign in with a demo login above)"
	$(FLASK) run --host 127.0.0.1 --port 5000

test: dev-install assets
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: dev-install
	$(BIN)/ruff check .

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(VENV)/.installed
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

dev-install: $(VENV)/.dev-installed
$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

# Third-party front-end assets come from npm (package.json) and are copied into static/vendor.
assets: static/vendor/.installed
static/vendor/.installed: package.json
	npm install --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/
	cp node_modules/@picocss/pico/css/pico.amber.min.css static/vendor/
	touch $@

migrate: install
	$(FLASK) db upgrade

seed: install
	$(FLASK) seed --demo

# Benchmark, never part of `make test`: a fresh PostgreSQL database at scale, gunicorn with the production
# settings, wrk at 32 connections, the two bare-Flask ceilings; see "Benchmark" in README.md.
BENCH_DB ?= midas_bench
BENCH_AVAIL_BOOKINGS ?= 1000000
BENCH_SEED_FLAGS ?=
BENCH_FLAGS ?=
bench: install
	@command -v wrk >/dev/null || echo "wrk not found (apt-get install -y wrk): falling back to the Python load generator"
	$(BIN)/python bench/seed.py --db $(BENCH_DB) $(BENCH_SEED_FLAGS)
	@if [ "$(BENCH_AVAIL_BOOKINGS)" != "0" ]; then \
		$(BIN)/python bench/seed.py --db $(BENCH_DB)_avail --availability-only --bookings $(BENCH_AVAIL_BOOKINGS); fi
	$(BIN)/python bench/run.py --db $(BENCH_DB) \
		$$( [ "$(BENCH_AVAIL_BOOKINGS)" != "0" ] && echo --avail-db $(BENCH_DB)_avail ) $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache
