# The collector's commands. `make help` lists them.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The operator's commands (collector/__main__.py): the flask CLI's, with one-line errors
# that name the make variable. Make's variables reach it through the environment ("$$NAME"
# is expanded by the shell, not pasted into the command), so any character in them is safe;
# $(given) passes an option when its variable was set at all, even empty.
FLASK := $(BIN)/python -m collector
given = $(if $(filter-out undefined default,$(origin $(1))),$(2) "$$$(1)")

.DEFAULT_GOAL := help
.PHONY: help run migrate migrate-to-postgres test test-postgres screenshots bench export patterns mine prune backup restore verify drain undrain key keys revoke stats lint clean

help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The venv gets what the server needs (requirements.txt) for `make run` and the
# operator's targets, and the test tools too (requirements-test.txt) for `make
# test`; each is installed again when its file changes. The output goes to
# stderr so that targets writing data to stdout (export) stay clean.
$(BIN)/.installed: requirements.txt
	@echo "setting up $(VENV) from requirements.txt" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt >&2
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt
	@echo "adding the test tools from requirements-test.txt" >&2
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-test.txt >&2
	@touch $@

run: $(BIN)/.installed ## start the collector with gunicorn on HOST:PORT (127.0.0.1:8000); Ctrl-C stops it
	@$(FLASK) migrate --server
	@exec $(BIN)/gunicorn -c gunicorn.conf.py

migrate: $(BIN)/.installed ## create or upgrade the database schema
	@$(FLASK) migrate

# Checked before anything is built, so that a bare `make migrate-to-postgres` only prints its usage.
ifneq ($(filter migrate-to-postgres,$(MAKECMDGOALS)),)
ifeq ($(and $(FROM),$(filter postgres%,$(DATABASE_URL))),)
$(error usage: make migrate-to-postgres DATABASE_URL=postgresql://user@host/db FROM=data/collector.db)
endif
endif
migrate-to-postgres: $(BIN)/.installed ## copy the SQLite database FROM=... (keys, chain) into the empty DATABASE_URL=postgresql://...
	@$(FLASK) migrate-to-postgres "$$FROM"

test: $(BIN)/.installed-test ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# COLLECTOR_TEST_POSTGRES: the server's maintenance database, where throwaway ones are made.
test-postgres: $(BIN)/.installed-test ## the whole test suite on PostgreSQL (COLLECTOR_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/postgres)
	COLLECTOR_TEST_BACKEND=postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: $(BIN)/.installed-test ## the explorer's browser tests, writing docs/explorer.png and docs/explorer-detail.png
	EXPLORER_SCREENSHOTS=docs $(BIN)/python -m pytest tests/test_explorer_browser.py

bench: $(BIN)/.installed ## ingest and query figures beside the raw SQLite limit (BENCH=smoke|full)
	BENCH=$(BENCH) $(BIN)/python -m bench

export: $(BIN)/.installed ## matching records as NDJSON on stdout (SINCE, UNTIL, SERVICE, MIN_SEVERITY, Q, GZIP=1)
	@$(FLASK) export $(call given,SINCE,--since) $(call given,UNTIL,--until) \
		$(foreach s,$(SERVICE),--service '$(subst ','\'',$(s))') $(call given,MIN_SEVERITY,--min-severity) \
		$(call given,Q,--q) $(if $(GZIP),--gzip)

patterns: $(BIN)/.installed ## the patterns of the logs, most records first (SERVICE, SINCE, UNTIL, MIN_SEVERITY, Q, NEW_SINCE)
	@$(FLASK) patterns $(call given,SINCE,--since) $(call given,UNTIL,--until) \
		$(foreach s,$(SERVICE),--service '$(subst ','\'',$(s))') $(call given,MIN_SEVERITY,--min-severity) \
		$(call given,Q,--q) $(call given,NEW_SINCE,--new-since)

mine: $(BIN)/.installed ## run the pattern miner here, for PATTERN_MINER=off (ONCE=1: catch up, then exit)
	@$(FLASK) mine $(if $(ONCE),--once)

prune: $(BIN)/.installed ## delete records past their retention (RETENTION_DAYS, RETENTION_RULES), ingest goes on
	@$(FLASK) prune

backup: $(BIN)/.installed ## consistent copy of the live database to BACKUP_DIR (backups/), ingest goes on
	@$(FLASK) backup

# Checked before anything is built, so that a bare `make restore` only prints its usage.
ifneq ($(filter restore,$(MAKECMDGOALS)),)
ifeq ($(FILE),)
$(error usage: make restore FILE=latest (the newest backup of the database) or FILE=backups/collector-<UTC time>.db, with the collector stopped)
endif
endif
restore: $(BIN)/.installed ## replace the database with the backup FILE=...; stop the collector first
	@$(FLASK) restore "$$FILE"

verify: $(BIN)/.installed ## walk the audit hash chain: "intact, N records" or the first record where it breaks
	@$(FLASK) verify

drain: $(BIN)/.installed ## create DRAIN_FILE (data/drain): /readyz answers 503, load balancers take this instance out
	@$(FLASK) drain

undrain: $(BIN)/.installed ## remove DRAIN_FILE: /readyz answers 200 again, the instance is back in
	@$(FLASK) undrain

# Checked before anything is built, so that a bare `make key` or `make revoke` only prints its usage.
ifneq ($(filter key,$(MAKECMDGOALS)),)
ifeq ($(and $(NAME),$(SCOPES)),)
$(error usage: make key NAME=billing SCOPES=ingest [SERVICES=billing,invoices] [RATE=records/s])
endif
endif
ifneq ($(filter revoke,$(MAKECMDGOALS)),)
ifeq ($(NAME),)
$(error usage: make revoke NAME=billing)
endif
endif
key: $(BIN)/.installed ## create an API key NAME= SCOPES=ingest,read,admin [SERVICES=] [RATE=]; prints it once
	@$(FLASK) keys create "$$NAME" --scopes "$$SCOPES" $(call given,SERVICES,--services) \
		$(call given,RATE,--rate-limit)

keys: $(BIN)/.installed ## list API keys: name, scopes, services, rate, created, last used (never the key)
	@$(FLASK) keys list

revoke: $(BIN)/.installed ## revoke the API key NAME=...; it stops working at once
	@$(FLASK) keys revoke "$$NAME"

stats: $(BIN)/.installed ## records, size on disk, time span, counts per service and severity
	@$(FLASK) stats

lint: $(BIN)/.installed-test ## check the code with ruff and the layers with import-linter (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean: ## remove the venv and caches (keeps data/)
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
