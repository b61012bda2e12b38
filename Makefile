# callreel — every target but `install` runs from .venv/, which `make install` creates.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP  := $(VENV)/.installed

.PHONY: install test test-e2e test-fast demo bench bench-image migrate serve up down clean

install: $(STAMP)

# Re-install when the dependencies change; FFmpeg comes from the system (apt when we can).
$(STAMP): pyproject.toml
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || bash scripts/install-system-deps.sh ffmpeg
	@# The compositor's labels (LABEL_FONT); without a font videos still render, unlabelled.
	@test -e /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf || bash scripts/install-system-deps.sh fonts-dejavu-core || echo "fonts-dejavu-core not installed: videos will have no labels"
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: install
	$(PYTEST) -q -ra

test-fast: install
	$(PYTEST) -q -ra -m "not e2e and not browser"

test-e2e: install
	$(PYTEST) -q -ra tests/e2e

demo: install
	$(PY) -m callreel.demo

bench: install
	$(PY) bench/run.py

# The benchmark under the FFmpeg the images ship (Debian's, unpacked by the
# script; root), with this machine's FFmpeg as the second build for compose.
bench-image: install
	$(PY) bench/run.py --ffmpeg "$$(bash scripts/image-ffmpeg.sh)" --also-ffmpeg "$$(dirname "$$(command -v ffmpeg)")"

migrate: install
	$(VENV)/bin/callreel migrate

serve: install
	$(VENV)/bin/callreel serve

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf $(VENV) .callreel .pytest_cache
