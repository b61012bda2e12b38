# syntax=docker/dockerfile:1
# ingest: Twilio's webhook and the status API (gunicorn + Falcon). Its download actor
# (queue `ingest`) runs from this same image with the worker command in
# docker-compose.yml and deploy/railway/ingest-worker.json. No FFmpeg here.
# Build from the repository root: docker build -f deploy/ingest.Dockerfile .

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
COPY services/ingest/ services/ingest/
RUN pip install --constraint constraints.txt ".[ingest]"

FROM python:3.11-slim-trixie
RUN groupadd --system --gid 10001 callreel \
 && useradd --system --uid 10001 --gid callreel --home-dir /app --shell /usr/sbin/nologin callreel \
 && install -d -o callreel -g callreel /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER callreel
# PORT: the webhook and status API; METRICS_PORT: Prometheus, private.
# METRICS_HOST: every address, so Prometheus can scrape from another container (the default is loopback).
ENV METRICS_HOST=::
EXPOSE 8000 9191
# Workers, threads and the bind address come from settings in gunicorn.conf.py.
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "services.ingest.app:app"]
