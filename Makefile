# The README's commands. Each creates .venv and installs the project on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test demo demo-retry services browser unit matrix celery-upstream bench bench-all bench-quick

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,http,web,browser-test]'
	touch $@

services:
	scripts/ensure-services.sh

# Headless Chromium for the dashboard's browser test (Debian packages).
browser:
	scripts/ensure-browser.sh

test: $(VENV)/.installed services browser
	$(PY) -m pytest

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

# The supported-versions matrix (noxfile.py): unit tests on the other Pythons, the compat subset
# on each older Celery minor.  `make test` covers Python 3.11 and the newest Celery.
matrix: $(VENV)/.installed services
	rm -f .nox/matrix.txt
	$(PY) -m nox -s unit-3.10 unit-3.12 unit-3.13 compat
	cat .nox/matrix.txt

# Celery's own integration tests (a subset), with Celery's Task and with DLXTask; see README "Tests".
celery-upstream: $(VENV)/.installed services
	$(PY) scripts/celery_integration.py --python $(PY)

# DEMO_ARGS="--metrics-port 9808": serve /metrics during the demo and check its counters at the end.
demo: $(VENV)/.installed services
	$(PY) -m examples.social_sync $(DEMO_ARGS)

demo-retry: $(VENV)/.installed services
	$(PY) -m examples.delayed_retry_demo

bench: $(VENV)/.installed services
	$(PY) -m benchmarks.foundation
	$(PY) -m benchmarks.ratelimit_bench

bench-quick: $(VENV)/.installed services
	$(PY) -m benchmarks.run --quick

bench-all: $(VENV)/.installed services
	$(PY) -m benchmarks.run

# ruff and mypy --strict, configured in pyproject.toml.
.PHONY: lint
lint: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[lint]'
	$(PY) -m ruff check celery_dlx tests benchmarks examples scripts noxfile.py
	$(PY) -m mypy

# Regenerate the generated classifier fixtures and docs/classify.md from the rule tables
# (tests/unit/test_classify_docs.py fails when either is out of date).
.PHONY: classify-docs
classify-docs: $(VENV)/.installed
	$(PY) scripts/gen_classify_fixtures.py
	$(PY) -m celery_dlx.classify.doc_table > docs/classify.md

# The integration suite and the reliability CI subset (plus the quorum broker restart) on
# RabbitMQ 4.0.5 in strict mode (4.3's denials), beside the system's 3.10.8: scripts/rabbitmq4.sh
# provisions it once (Debian trixie chroot, needs root), starts it on 127.0.0.1:5682 (management
# 15682), and stops it afterwards whatever the result.  RABBITMQ4_INTEGRATION / RABBITMQ4_RELIABILITY
# narrow what runs (pytest arguments), e.g. RABBITMQ4_RELIABILITY=tests/reliability/test_broker_restart.py.
RABBITMQ4_INTEGRATION ?= tests/integration
RABBITMQ4_RELIABILITY ?= tests/reliability
.PHONY: test-rabbitmq4
test-rabbitmq4: $(VENV)/.installed services
	scripts/rabbitmq4.sh start
	eval "$$(scripts/rabbitmq4.sh env)"; status=0; \
	$(PY) -m pytest $(RABBITMQ4_INTEGRATION) || status=$$?; \
	DLX_RELIABILITY_QUORUM_RESTART=1 $(PY) -m pytest $(RABBITMQ4_RELIABILITY) || status=$$?; \
	scripts/rabbitmq4.sh stop; exit $$status

# The Redis storages (rate limits, breakers, task trees, page ledgers, idempotency, metrics) on a
# local Redis Cluster of 3 masters + 3 replicas (127.0.0.1:7100-7105) and on a local Sentinel
# setup (master + replica on 7150-7151, sentinels on 26379-26381), started and removed by the
# tests, plus the failover tests (their own servers on 7110-7115 and 7160-7161 / 26389-26391).
# Needs redis-server and redis-cli.
.PHONY: test-redis-cluster
test-redis-cluster: $(VENV)/.installed services
	$(PY) -m pytest -m "redis_cluster or redis_sentinel"
