"""services/ingest/submission.py: the one submission path, on its own (the API's tests are web/test_api_submit.py).

What a front door cannot show: two deliveries racing past the duplicate check, a broker that is down, a
credential that cannot be sealed, and the URL rules' wildcards.
"""

from __future__ import annotations

import pytest

from services.ingest import submission
from services.ingest.submission import Submission, SubmissionRefused, submit
from services.ingest.validation import check_submitted_url, parse_host_list
from shared import keys
from shared.models import Call, Source, Stage
from shared.sealing import SealError, seal, unseal
from tests.services.ingest.conftest import API_TOKEN
from tests.support import media


@pytest.fixture
def env(pg_db, stub_broker, ingest_env, s3):
    return ingest_env(RECORDING_URL_HOSTS="recordings.example.com")


def upload(tmp_path, external_id: str = "race-1") -> Submission:
    return Submission(source=Source.VAPI, external_id=external_id, recording_path=media.tone_call(tmp_path / "call.wav", 1.0))


def test_the_loser_of_a_race_gets_the_winners_call_and_leaves_no_object(env, s3, tmp_path, monkeypatch):
    first = submit(upload(tmp_path), settings=env)
    # The second delivery looked before the first's row existed: its INSERT is the one that loses.
    monkeypatch.setattr(submission, "_existing", lambda source, external_id, calls=iter([None]): next(calls, None) or Call.get(
        (Call.source == source) & (Call.external_id == external_id)))
    second = submit(upload(tmp_path), settings=env)
    assert (second.call_id, second.created, first.created) == (first.call_id, False, True)
    assert Call.select().count() == 1
    listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix="recordings/").get("Contents", [])
    assert [o["Key"] for o in listed] == [keys.recording_key(first.call_id, "wav")]


def test_a_broker_that_is_down_keeps_the_call_for_the_sweeper(env, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(submission.pipeline, "start", refuse)
    result = submit(upload(tmp_path, "down-1"), settings=env)
    call = Call.get_by_id(result.call_id)
    assert (result.created, result.queued, call.stage, call.video_status) == (True, False, Stage.AUDIO, "pending")


def test_a_credential_is_sealed_only_with_a_token_and_opens_only_with_it(env, ingest_env):
    sealed = seal("Bearer abc", API_TOKEN)
    assert "abc" not in sealed and unseal(sealed, API_TOKEN) == "Bearer abc"
    with pytest.raises(SealError, match="CALLREEL_API_TOKEN changed"):
        unseal(sealed, "another-token-" + "y" * 30)
    no_token = ingest_env(CALLREEL_API_TOKEN="", RECORDING_URL_HOSTS="recordings.example.com")
    sub = Submission(source=Source.API, external_id="a", recording_url="https://recordings.example.com/a.wav", recording_auth="Bearer abc")
    with pytest.raises(SubmissionRefused, match="CALLREEL_API_TOKEN is not set"):
        submit(sub, settings=no_token)
    with pytest.raises(SubmissionRefused, match="Authorization header value"):
        submit(Submission(source=Source.API, external_id="a", recording_url=sub.recording_url, recording_auth="abc"), settings=env)
    assert Call.select().count() == 0


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        (["*.vapi.example"], "https://storage.vapi.example/r.wav", True),
        (["*.vapi.example"], "https://vapi.example/r.wav", False),  # a wildcard is for subdomains only
        (["*.vapi.example"], "https://storage.vapi.example:444/r.wav", False),
        (["*"], "https://anything.test/r.wav", True),
        (["host.test:8443"], "https://host.test:8443/r.wav", True),
        (["host.test:8443"], "https://host.test/r.wav", False),
        (["host.test"], "https://HOST.test/r.wav", True),
        ([], "https://host.test/r.wav", False),
    ],
)
def test_url_hosts_wildcards_and_ports(entries, url, allowed):
    hosts = parse_host_list(entries)
    if allowed:
        assert check_submitted_url(url, hosts) == url
    else:
        with pytest.raises(ValueError):
            check_submitted_url(url, hosts)


def test_a_bad_host_list_entry_is_refused():
    for entry in ("*.", "a*.b", "*.b:443", "http://x", "host/x", "a b"):
        with pytest.raises(ValueError, match="RECORDING_URL_HOSTS"):
            parse_host_list([entry])


def test_a_bad_entry_stops_the_deployment_at_start(settings_env):
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="RECORDING_URL_HOSTS entries must be"):
        settings_env(RECORDING_URL_HOSTS="calls.example.com,http://x")
