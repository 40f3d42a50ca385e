# sardana-redis: the README's commands.
#   make venv    .venv/ with the package, test tools and the Redis Stack binaries
#   make demo    the main job: Redis Stack + Tango DB + demo Sardana + writers + scans
#   make demo-keep  the same, left running (Ctrl-C stops it) to try it from spock
#   make test    the test suite (real Redis Stack, real Tango, real Sardana)
#   make test-quick  the tests without servers (pure logic, golden files): seconds
#   make bench   the benchmarks in benchmarks/
#   make reliability  the load/fault/hostile-input suite at full scale, with its table

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo demo-keep test test-quick bench reliability clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/sardana-redis install-redis-stack
	touch $@

demo: venv
	$(BIN)/python -m sardana_redis.demo

demo-keep: venv
	$(BIN)/python -m sardana_redis.demo --keep

test: venv
	$(BIN)/python -m pytest --basetemp=.pytest-tmp

test-quick: venv
	$(BIN)/python -m pytest -m 'not stack' --basetemp=.pytest-tmp

reliability: venv
	RELIABILITY_SCALE=full RELIABILITY_REPORT=reliability-report.md \
	  $(BIN)/python -m pytest --basetemp=.pytest-tmp tests/reliability

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info demo-output .pytest_cache .pytest-tmp reliability-report.md
