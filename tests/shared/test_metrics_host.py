"""Where /metrics listens: METRICS_HOST, loopback unless a container says otherwise (issue 25)."""

import socket
import urllib.request

import pytest

from shared import metrics
from shared.settings import load_settings
from tests.support.services import free_port


def _stop(running) -> None:
    running.server.shutdown()
    running.server.server_close()


def test_metrics_host_defaults_to_loopback():
    assert load_settings({}).metrics_host == "127.0.0.1"


def test_the_server_binds_the_host_it_is_given_and_only_it():
    running = metrics.start_metrics_server(free_port(), host="127.0.0.1")
    try:
        assert running.server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=10) as resp:
            assert resp.status == 200
        # Another local address of this machine (127.0.0.2 is loopback too, but not the bound one).
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", running.port), timeout=2).close()
    finally:
        _stop(running)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_every_interface_only_when_asked(host):
    running = metrics.start_metrics_server(free_port(), host=host)
    try:
        with urllib.request.urlopen(f"http://127.0.0.2:{running.port}/metrics", timeout=10) as resp:
            assert resp.status == 200
    finally:
        _stop(running)


def test_worker_metrics_listen_on_metrics_host(settings_env, monkeypatch):
    seen = {}

    def fake_server(host, port, registry):
        seen["host"] = host
        raise OSError("stop here")

    monkeypatch.setattr(metrics, "_server", fake_server)
    settings_env(METRICS_PORT=str(free_port()), METRICS_HOST="10.1.2.3")
    assert metrics.serve_worker_metrics() == 1
    assert seen["host"] == "10.1.2.3"
