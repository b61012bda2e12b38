"""``callreel serve``: the webhook app and the four workers in one process, answering over HTTP."""

import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.env import process_env
from tests.support.services import free_port
from tests.support.wait import log_tail, wait_for

CLI = Path(sys.executable).with_name("callreel")


def test_serve_answers_health_and_refuses_forged_webhooks(tmp_path):
    port = free_port()
    env = process_env(
        HOME=tmp_path, TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="secret", PUBLIC_BASE_URL="https://callreel.example"
    )
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(CLI), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def health() -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return response.status
            except OSError:
                return None

        status = wait_for(health, timeout=60, interval=0.3, what="/healthz", process=proc, describe=log_tail(tmp_path / "serve.log"))
        assert status == 200
        form = b"AccountSid=AC" + b"1" * 32 + b"&CallSid=CA" + b"2" * 32
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/twilio/recording-status", data=form, headers={"X-Twilio-Signature": "forged"}
        )
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("a forged webhook was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
