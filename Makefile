# sardana-redis: the README's commands.
#   make venv    .venv/ with the package, test tools and the Redis Stack binaries
#   make demo    the main job: Redis Stack + Tango DB + demo Sardana + writers + scans,
#                in its own .venv-demo/ (the package with its demo extra, no test tools)
#   make demo-keep  the same, left running (Ctrl-C stops it) to try it from spock
#   make test    the test suite (real Redis Stack, real Tango, real Sardana)
#   make test-quick  the tests without servers (pure logic, golden files): seconds
#   make lint    ruff and mypy on sardana_redis/ (configured in pyproject.toml): no server
#   make test-compat  the recorder, writer, tracker and scan_info tests in cached side
#                environments: the oldest and the newest supported Sardana/PyTango/blissdata
#   make bench   the benchmarks in benchmarks/
#   make reliability  the load/fault/hostile-input suite at full scale, with its table

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_VENV := .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin
DEMO_STAMP := $(DEMO_VENV)/.installed

.PHONY: venv demo-venv demo demo-keep test test-quick lint test-compat bench reliability clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/sardana-redis install-redis-stack
	touch $@

demo-venv: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml setup.py
	test -x $(DEMO_BIN)/python || $(PYTHON) -m venv $(DEMO_VENV) || python3 -m venv $(DEMO_VENV)
	$(DEMO_BIN)/python -m pip install --quiet --upgrade pip
	$(DEMO_BIN)/python -m pip install --quiet -e '.[demo]'
	$(DEMO_BIN)/sardana-redis install-redis-stack
	touch $@

demo: demo-venv
	$(DEMO_BIN)/python -m sardana_redis.demo

demo-keep: demo-venv
	$(DEMO_BIN)/python -m sardana_redis.demo --keep

# Two processes, a module each at a time (-n 2 --dist loadfile): each has its own Tango
# database and Sardana; most of the suite waits on servers, so it takes about half as long.
test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile --basetemp=.pytest-tmp

test-quick: venv
	$(BIN)/python -m pytest -m 'not stack' --basetemp=.pytest-tmp

lint: venv
	$(BIN)/ruff check sardana_redis
	$(BIN)/mypy sardana_redis

test-compat: venv
	$(BIN)/python -m compat

reliability: venv
	RELIABILITY_SCALE=full RELIABILITY_REPORT=reliability-report.md \
	  $(BIN)/python -m pytest --basetemp=.pytest-tmp tests/reliability

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(DEMO_VENV) build *.egg-info demo-output .pytest_cache .pytest-tmp reliability-report.md \
	  .mypy_cache .ruff_cache
