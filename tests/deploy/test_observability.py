"""deploy/prometheus/alerts.yml and deploy/grafana/callreel.json, loaded with their tools' own formats.

The alert rules go through promtool: ``check rules`` (the syntax and every PromQL
expression) and ``test rules`` (each alert fires on the series that should raise
it, and not on the others). The dashboard is read as Grafana reads a dashboard
model, and every metric its queries name must be one the code exports: the test
exports them by recording through shared.metrics and scraping the ingest gauges.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "callreel.json"
METRIC = re.compile(r"\b(?:callreel|dramatiq)_[a-z_]+\b")

UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'callreel_queue_messages{{stage="generation", state="ready", instance="ingest"}}'
        values: '3x10'
      - series: 'callreel_queue_consumers{{stage="generation", instance="ingest"}}'
        values: '0x10'
      - series: 'callreel_queue_messages{{stage="audio", state="ready", instance="ingest"}}'
        values: '5x10'
      - series: 'callreel_queue_consumers{{stage="audio", instance="ingest"}}'
        values: '2x10'
      - series: 'callreel_calls_ended_total{{status="failed"}}'
        values: '0+1x70'
      - series: 'callreel_calls_ended_total{{status="completed"}}'
        values: '0+2x70'
      - series: 'callreel_queue_up{{instance="ingest"}}'
        values: '1x70'
    alert_rule_test:
      - eval_time: 5m
        alertname: CallreelQueueWithoutConsumers
        exp_alerts:
          - exp_labels: {{severity: critical, stage: generation}}
            exp_annotations:
              summary: "generation: messages wait and no worker consumes them"
              description: "3 message(s) ready in the generation queue with no consumer. Start or scale the generation service; the console's Calls page filtered by stage lists the calls."
      - eval_time: 5m
        alertname: CallreelDeadLetters
        exp_alerts: []
      - eval_time: 70m
        alertname: CallreelFailureRateHigh
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: "33.33% of the calls ended in the last hour failed"
              description: "The console's overview lists the top failure reasons, each linking to its calls."
      - eval_time: 70m
        alertname: CallreelQueueMetricsDown
        exp_alerts: []
"""


@pytest.mark.promtool
def test_promtool_loads_the_alert_rules_and_each_fires_when_it_should(tmp_path):
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(UNIT_TESTS.format(rules=ALERTS))
    ran = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # As docker-compose.yml mounts them: the scrape config and the rules side by side in one folder.
    (tmp_path / "prometheus.yml").write_text((ROOT / "deploy" / "prometheus.yml").read_text())
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    config = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60)
    assert config.returncode == 0 and "SUCCESS: 5 rules found" in config.stdout, config.stdout + config.stderr


def test_the_alerts_are_the_console_banners():
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    names = [rule["alert"] for rule in rules]
    assert names == [
        "CallreelQueueWithoutConsumers", "CallreelDeadLetters", "CallreelCallsPastStageDeadline", "CallreelFailureRateHigh",
        "CallreelQueueMetricsDown",
    ]
    # The failure-rate threshold is ALERT_FAILURE_RATE's default.
    from shared.settings import Settings

    assert rules[3]["expr"].endswith(f"> {Settings.__dataclass_fields__['alert_failure_rate'].default}")


def exported_metrics(settings_env) -> set[str]:
    """The names of every series the code exports, made by recording one of each (and scraping the ingest gauges)."""
    import prometheus_client
    from dramatiq import Message

    from services.ingest.gauges import IngestGauges
    from shared import metrics
    from shared.queues import QueueState

    metrics.stage_finished("audio", 1.0)
    metrics.call_ended("completed")
    metrics.call_failed("audio", "failed")
    metrics.environment_failure("audio", "storage")
    metrics.fal_job_ended("avatar", "completed", 4.0)
    metrics.ffmpeg_ran("compose", 2.0)
    worker = metrics.WorkerMetrics(Path("/nonexistent"))
    message = Message(queue_name="audio", actor_name="split", args=(), kwargs={}, options={"retries": 1})
    worker.before_delay_message(None, message)
    worker.before_process_message(None, message)
    worker.after_process_message(None, message, exception=ValueError())
    worker.after_nack(None, message)
    worker.after_enqueue(None, message, None)

    class Request:
        uri_template, method = "/calls", "GET"
        context = type("Context", (), {"metrics_started": 0.0})()

    metrics.RequestMetrics().process_response(Request(), type("Response", (), {"status_code": 200})(), None, True)
    names = {sample.name for family in prometheus_client.REGISTRY.collect() for sample in family.samples}

    class Queues:
        configured = True

        def stages(self):
            return {"audio": QueueState(ready=1, in_progress=0, delayed=0, dead=2, consumers=0)}

    settings = settings_env(DATABASE_URL="sqlite:///:memory:")
    from peewee import SqliteDatabase

    db = SqliteDatabase(":memory:")
    db.execute_sql("CREATE TABLE calls (stage TEXT, video_status TEXT, ingest_started_at, audio_started_at, generation_started_at, compositor_started_at)")
    names |= {sample.name for family in IngestGauges(settings, Queues(), db).collect() for sample in family.samples}
    return names


def test_the_dashboard_is_a_grafana_dashboard_on_metrics_the_code_exports(settings_env):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "callreel" and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids, used = set(), set()
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "table", "bargauge") and panel["title"]
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0  # Grafana's grid is 24 columns wide
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}" and panel["targets"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"]
            for variable in re.findall(r"\$(\w+)", target["expr"]):
                assert variable in variables | {"__rate_interval", "__interval", "__range"}, variable
            used |= set(METRIC.findall(target["expr"]))
    exported = exported_metrics(settings_env)
    assert used - exported == set(), f"the dashboard queries metrics nothing exports: {sorted(used - exported)}"
    # Every family the issue names has a panel: queues, stage latency, failures, fal jobs and spend, FFmpeg time.
    assert {
        "callreel_queue_messages", "callreel_stage_duration_seconds_bucket", "callreel_stage_failures_total",
        "callreel_fal_jobs_total", "callreel_fal_video_seconds_total", "callreel_ffmpeg_duration_seconds_bucket",
    } <= used
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    alerted = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    assert alerted - exported == set(), f"the alerts read metrics nothing exports: {sorted(alerted - exported)}"
