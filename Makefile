# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test test-reliability lint assets install dev-install migrate seed bench clean

run: install assets
	$(FLASK) db upgrade
	@$(FLASK) seed --demo
	@echo "Midas is serving on http://127.0.0.1:5000 (sign in with a demo login above)"
	$(FLASK) run --host 127.0.0.1 --port 5000

# With PostgreSQL configured the two backends run side by side, one pytest each (the machine has two
# cores): SQLite, the embedded default, with every test that needs no database; and PostgreSQL + Redis.
# -k splits on the backend in each test's id, so every test runs exactly once.
test: dev-install assets
	$(BIN)/ruff check .
ifeq ($(TEST_DATABASE_URL),)
	$(BIN)/pytest
else
	@lite_log=$$(mktemp); lite_tmp=$$(mktemp -d); pg_tmp=$$(mktemp -d); \
	$(BIN)/pytest -p no:cacheprovider --basetemp=$$lite_tmp -k "not postgresql" >$$lite_log 2>&1 & lite=$$!; \
	$(BIN)/pytest -p no:cacheprovider --basetemp=$$pg_tmp -k postgresql; pg_status=$$?; \
	wait $$lite; lite_status=$$?; \
	echo "================ SQLite and database-free half ================"; cat $$lite_log; \
	rm -rf $$lite_log $$lite_tmp $$pg_tmp; \
	echo "PostgreSQL half exit $$pg_status, SQLite half exit $$lite_status"; \
	test $$pg_status -eq 0 && test $$lite_status -eq 0
endif

# Fault, race and attack tests alone (real Redis, PostgreSQL, workers, gunicorn); prints the figures.
test-reliability: dev-install assets
	$(BIN)/pytest -m reliability -p no:cacheprovider

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
bench: dev-install
	@command -v wrk >/dev/null || echo "wrk not found (apt-get install -y wrk): falling back to the Python load generator"
	$(BIN)/python bench/seed.py --db $(BENCH_DB) $(BENCH_SEED_FLAGS)
	@if [ "$(BENCH_AVAIL_BOOKINGS)" != "0" ]; then \
		$(BIN)/python bench/seed.py --db $(BENCH_DB)_avail --availability-only --bookings $(BENCH_AVAIL_BOOKINGS); fi
	$(BIN)/python bench/run.py --db $(BENCH_DB) \
		$$( [ "$(BENCH_AVAIL_BOOKINGS)" != "0" ] && echo --avail-db $(BENCH_DB)_avail ) $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache
