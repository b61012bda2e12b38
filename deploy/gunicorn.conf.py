"""gunicorn settings of the ingest service.

    gunicorn -c deploy/gunicorn.conf.py            # serves services.ingest.app:app

Everything comes from callreel's settings (PORT, GUNICORN_WORKERS,
GUNICORN_THREADS, LOG_LEVEL, LOG_FORMAT), checked here, in the master, so a bad
deployment stops at once with every problem listed instead of workers failing
to boot one after another.
"""

import sys

from services.ingest.app import check_settings
from shared.settings import SettingsError, get_settings

try:
    _settings = get_settings()
    check_settings(_settings)
except SettingsError as exc:
    sys.stderr.write(f"{exc}\n")
    sys.exit(2)

wsgi_app = "services.ingest.app:app"
bind = [f"0.0.0.0:{_settings.port}"]
proc_name = "callreel-ingest"

# Threads serve webhooks while another waits on the database or the broker;
# every request is short (nothing slow happens in one), so few are needed.
worker_class = "gthread"
workers = _settings.gunicorn_workers
threads = _settings.gunicorn_threads

# Twilio gives up after 15 s; a worker silent for 30 s is stuck and replaced.
timeout = 30
graceful_timeout = 20
keepalive = 5  # behind Railway's proxy, which keeps connections open
# Recycle workers now and then, so a slow leak can never grow without bound.
max_requests = 5000
max_requests_jitter = 500

# Request bodies are small forms: keep gunicorn's header limits strict.
limit_request_line = 4094
limit_request_fields = 100

accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
if _settings.log_format == "json":
    # gunicorn's own lines (its error log and the access log) as JSON objects too, written by
    # callreel's formatter: an access line for a call's URL carries its call_id (shared/logs.py).
    from shared.logs import gunicorn_logconfig  # noqa: E402

    logconfig_dict = gunicorn_logconfig(_settings.log_level)

# Prometheus: the workers keep their request metrics in one folder, which the
# master sums and serves on METRICS_PORT (off the public PORT). See shared/metrics.py.
# The master also serves the queue and stuck-call gauges the alerts read (services/ingest/gauges.py).
from shared.metrics import gunicorn_child_exit as child_exit  # noqa: E402
from shared.metrics import gunicorn_when_ready  # noqa: E402


def when_ready(server):
    from services.ingest.gauges import IngestGauges

    gunicorn_when_ready(server, collectors=[IngestGauges(_settings)])
