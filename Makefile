# Switchboard: `make run` serves the app, `make test` runs every test (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_PROCESSES ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run install install-dev signin-deps browser redis-server test lint services test-scaleout bench bench-peers clean static axe
.PHONY: gettext messages makemessages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# slapd, python-ldap's build headers and the test OpenID Provider's npm packages come first:
# the dev extra compiles python-ldap, and the sign-in tests start slapd and oidc-provider.
install-dev: signin-deps $(VENV)/.installed-dev

signin-deps:
	@PYTHON=$(PYTHON) bash .ci/signin-deps.sh

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser),
# and a Chinese font, so the zh-hans pages show text, not boxes (README "Languages").
browser:
	@test -x /usr/bin/chromium || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@fc-list :lang=zh | grep -q . || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends fonts-wqy-microhei >/dev/null; }

# axe-core for the accessibility checks of the browser tests (tests/axe, pinned by its lock;
# injected into the pages by Playwright, never served by the app). Needs npm (signin-deps).
axe: signin-deps
	@test -f tests/axe/node_modules/axe-core/axe.min.js || \
		(cd tests/axe && npm ci --no-audit --no-fund --loglevel=error)

# Debian's redis-server: tests that restart Redis start one of their own (tests/redis_server.py).
redis-server:
	@command -v redis-server >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends redis-server >/dev/null; }

# Translations (README "Languages"): the .po catalogs under locale/ are compiled to .mo files
# (not in git) by Debian's gettext (msgfmt), installed when missing; a changed .po recompiles.
gettext:
	@command -v msgfmt >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends gettext >/dev/null; }

MO_FILES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))
messages: $(MO_FILES)

%.mo: %.po | gettext
	msgfmt --check-format -o $@ $<

# After marking strings: new msgids into the catalogs (then `python -m devtools.i18n fill`).
makemessages: install-dev gettext
	$(PY) -m devtools.i18n extract

# Embedded defaults: SQLite under data/, in-memory channel layer, built-in demo gateway.
# Plain HTTP on loopback, so the HTTPS-only cookie and redirect settings are off here.
# Hashed, gzip- and brotli-compressed copies in STATIC_ROOT (pages name only those files).
static: install
	$(PY) manage.py collectstatic --noinput -v0

run: install static messages
	$(PY) manage.py migrate --noinput
	DJANGO_SECURE=$${DJANGO_SECURE:-0} PORT=$(PORT) $(VENV)/bin/daphne --ping-interval 60 -b $(HOST) -p $(PORT) project.asgi:application

lint: install-dev
	$(VENV)/bin/ruff check .

# Every test: first those that need no browser, on every core (pytest-xdist), then the browser
# tests and the timed ones (marked serial) alone; SKIP_BROWSER=1 leaves the browser tests out.
# Exit code 5 is "nothing selected" (a PYTEST_ARGS path with tests of one kind only).
ALONE := $(if $(filter 1,$(SKIP_BROWSER)),serial,browser or serial)
test: install-dev browser redis-server axe messages lint
	$(VENV)/bin/pytest -n $(TEST_PROCESSES) -m "not multiprocess and not browser and not serial" \
		$(PYTEST_ARGS) || [ $$? = 5 ]
	$(VENV)/bin/pytest -m "not multiprocess and ($(ALONE))" $(PYTEST_ARGS) || [ $$? = 5 ]

# PostgreSQL and Redis from Debian's packages, on 127.0.0.1 (idempotent; prints the URLs).
services:
	@bash .ci/services.sh

# The tests that matter with several workers, on PostgreSQL + Redis, including the
# multi-process ones (their -m replaces the default "not multiprocess"): as in make test, the
# others on every core first, then the multi-process and timed ones alone.
SCALEOUT_TESTS ?= tests/test_consumer.py tests/test_generation.py tests/test_deploy.py \
	tests/test_sharing.py tests/test_search.py tests/test_history_paging.py tests/test_quotas.py \
	tests/test_usage.py tests/test_hardening_config.py tests/test_multiprocess.py tests/test_faults.py \
	tests/test_worker_faults.py tests/test_turn_mirror.py tests/test_channel_layer.py \
	tests/test_session_binding.py tests/test_idle_sockets.py tests/test_live_local.py \
	tests/test_prepared_reads.py
test-scaleout: install-dev messages
	@urls=$$(bash .ci/services.sh) && eval "$$urls" && \
		{ $(VENV)/bin/pytest -n $(TEST_PROCESSES) -m "not browser and not multiprocess and not serial" \
			$(SCALEOUT_TESTS) $(PYTEST_ARGS) || [ $$? = 5 ]; } && \
		{ $(VENV)/bin/pytest -m "not browser and (multiprocess or serial)" \
			$(SCALEOUT_TESTS) $(PYTEST_ARGS) || [ $$? = 5 ]; }

# Benchmark: demo gateway + app under Daphne + load generator, figures vs a direct baseline
# (bench/README.md). BENCH_ARGS=--quick for the under-a-minute version CI runs.
bench: install-dev browser static
	$(PY) bench/run.py $(BENCH_ARGS)

# The API path raced against LiteLLM's proxy on this machine (bench/peers.py): LiteLLM goes in
# a venv of its own (.venv-peers), never in the app's. Not part of CI.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet "litellm[proxy]"
	touch $@

bench-peers: install-dev $(PEERS_VENV)/.installed
	$(PY) bench/peers.py --litellm $(PEERS_VENV)/bin/litellm $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) staticfiles .pytest_cache .ruff_cache
