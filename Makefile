# callreel — every target but `install`, `install-runtime` and `lock` runs from .venv/, which they create.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# Two install levels in the one .venv: the runtime (what `callreel` and the demo
# run on) and dev on top of it (the tests' tools). `make demo` then `make test`
# upgrades the same .venv; the dev install also satisfies the runtime stamp.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev
# Every install takes the tested versions from the lock (make lock rewrites it).
# -qq: errors only (setuptools's editable-install banner is noise on a first run).
PIP_INSTALL   := $(PY) -m pip install -qq --constraint constraints.txt
PYTEST_ARGS   ?=
# Two pytest-xdist workers: most tests wait on processes and servers, so two share the two cores well.
# Each worker is its own session (its own database, vhost and S3 server); tests/e2e and tests/bench stay
# on one worker each (XDIST_GROUPS in tests/conftest.py). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
XDIST          := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))
# pytest's exit 5 (no test ran) fails make like any other error, and says so.
RUN_PYTEST     = $(PYTEST) -q -ra $(1) $(PYTEST_ARGS) || { rc=$$?; [ $$rc != 5 ] || echo "pytest ran no test: that is a failure" >&2; exit $$rc; }

.PHONY: install install-dev install-runtime lock lint test test-e2e test-fast test-machine demo bench bench-scale bench-fal bench-image migrate serve up down clean

# The developer's install: runtime and the tests' tools.
install: $(DEV_STAMP)
install-dev: $(DEV_STAMP)
# What `callreel` needs to run (all four services' code), without the tests' tools.
install-runtime: $(RUNTIME_STAMP)

# FFmpeg and the label font come from the system (apt when we can): the runtime needs both.
$(VENV)/.system-runtime:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || bash scripts/install-system-deps.sh ffmpeg
	@# The compositor's labels (LABEL_FONT); without a font videos still render, unlabelled.
	@test -e /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf || bash scripts/install-system-deps.sh fonts-dejavu-core || echo "fonts-dejavu-core not installed: videos will have no labels"
	@test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || bash scripts/install-system-deps.sh fonts-wqy-microhei || echo "fonts-wqy-microhei not installed: names in Chinese, Japanese or Korean show the deployment's label"
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	@touch $@

$(RUNTIME_STAMP): pyproject.toml constraints.txt $(VENV)/.system-runtime
	@if [ -e $(DEV_STAMP) ] && [ $(DEV_STAMP) -nt pyproject.toml ] && [ $(DEV_STAMP) -nt constraints.txt ]; then \
	  echo "runtime already installed with the dev extras"; \
	else \
	  echo "$(PIP_INSTALL) -e '.[all]'" && $(PIP_INSTALL) -e '.[all]'; \
	fi
	@touch $@

$(DEV_STAMP): pyproject.toml constraints.txt $(VENV)/.system-runtime
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@ $(RUNTIME_STAMP)

# Rewrite constraints.txt from a new, unconstrained dev install: the newest versions pyproject's pins admit.
lock:
	rm -rf $(VENV)-lock && python3 -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install -qq --upgrade pip
	$(VENV)-lock/bin/python -m pip install -qq -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(VENV)-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(VENV)-lock

# What the tests need from the machine: system packages, PostgreSQL, RabbitMQ and its management API.
test-machine:
	@bash scripts/test-machine.sh

# The shipped code's lint: ruff (style, import order, complexity, likely bugs) and mypy; settings in pyproject.toml.
# Both run, so one pass reports both; either failing fails the target.
lint: install
	@rc=0; \
	echo "ruff check shared services callreel"; $(VENV)/bin/ruff check shared services callreel || rc=1; \
	echo "mypy"; $(VENV)/bin/mypy || rc=1; \
	exit $$rc

test: install test-machine
	@$(call RUN_PYTEST,$(XDIST))

test-fast: install test-machine
	@$(call RUN_PYTEST,$(XDIST) -m "not e2e and not browser")

test-e2e: install test-machine
	@$(call RUN_PYTEST,tests/e2e)

demo: install-runtime
	$(PY) -m callreel.demo

bench: install
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/fal_latency.py

# The console at scale alone (bench/scale.py; also `make bench BENCH_ARGS=--scale`).
bench-scale: install
	$(PY) bench/scale.py

# fal.ai time-to-video and cost against the simulator (#26): QUICK=1 for a short run; LONG=1 (the 10- and
# 30-minute calls) then SHORT=1 (1 and 5 minutes, the burst) is the full run in two parts, kept in one
# section; FAL_ARGS for any other option (bench/fal_latency.py --help).
bench-fal: install
	$(PY) bench/fal_latency.py $(if $(QUICK),--quick) $(if $(LONG),--long) $(if $(SHORT),--short) $(FAL_ARGS)

# The benchmark under the FFmpeg the images ship (Debian's, unpacked by the
# script; root), with this machine's FFmpeg as the second build for compose.
bench-image: install
	$(PY) bench/run.py --ffmpeg "$$(bash scripts/image-ffmpeg.sh)" --also-ffmpeg "$$(dirname "$$(command -v ffmpeg)")"

migrate: install-runtime
	$(VENV)/bin/callreel migrate

serve: install-runtime
	$(VENV)/bin/callreel serve

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf $(VENV) .callreel .pytest_cache
