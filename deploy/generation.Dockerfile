# syntax=docker/dockerfile:1
# generation: fal.ai jobs per side and segment, polled by delayed messages. No FFmpeg here.
# Build from the repository root: docker build -f deploy/generation.Dockerfile .

FROM python:3.11-slim-trixie AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only the shared package, the CLI and this service's own code: a service
# that imported another's would fail here, not in production.
# constraints.txt: the tested versions (the lock make install uses too).
COPY pyproject.toml README.md constraints.txt ./
COPY shared/ shared/
COPY callreel/ callreel/
COPY services/__init__.py services/__init__.py
COPY services/generation/ services/generation/
RUN pip install --constraint constraints.txt ".[generation]"

FROM python:3.11-slim-trixie
RUN groupadd --system --gid 10001 callreel \
 && useradd --system --uid 10001 --gid callreel --home-dir /app --shell /usr/sbin/nologin callreel \
 && install -d -o callreel -g callreel /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER callreel
# METRICS_PORT: Prometheus, private.
# METRICS_HOST: every address, so Prometheus can scrape from another container (the default is loopback).
ENV METRICS_HOST=::
EXPOSE 9191
# A shell only to read WORKER_PROCESSES / WORKER_THREADS (defaults: shared/settings.py);
# exec hands PID 1 to dramatiq, which turns SIGTERM into a graceful stop.
CMD ["/bin/sh", "-c", "exec python -m shared.dramatiq_cli services.generation.actors --queues generation --processes ${WORKER_PROCESSES:-1} --threads ${WORKER_THREADS:-2}"]
