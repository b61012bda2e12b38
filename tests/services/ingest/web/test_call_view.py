"""The status API, the operator page and ``callreel status`` show one call the same way (``shared.callview``)."""

import datetime as dt
import html
import json
import re
from urllib.parse import urlsplit

import pytest

from callreel.cli import main
from services.ingest.web.fragments import duration_text
from shared import keys
from shared.models import Call, Segment, SideState, Stage, VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call, sid

T0 = dt.datetime(2026, 11, 26, 3, 0, 0)


@pytest.fixture
def web(operator_client):
    return operator_client


def timed_call(s3) -> str:
    """A completed call whose recorded processing time (75 s) is not its timestamps' (80 s), decoded as 0 s long."""
    call = sid(1)
    make_call(
        call, video_status=VideoStatus.COMPLETED, stage=Stage.DONE, created_at=T0,
        recording_sid=sid(1, "RE"), recording_duration=61, recording_channels=2, audio_duration=0.0,
        video_url=s3.object_url(keys.video_key(call)), caller_video_url=s3.object_url(keys.side_video_key(call, "caller")),
        caller_state=SideState.GENERATED, callee_state=SideState.GENERATED, caller_duration=30.5, callee_duration=29.0,
        ingest_started_at=T0, ingest_finished_at=T0 + dt.timedelta(seconds=3), ingest_attempts=1,
        video_processing_started_at=T0, video_processing_completed_at=T0 + dt.timedelta(seconds=80), video_processing_duration=75,
        transcript_status="completed", transcript_url=s3.object_url(keys.transcript_key(call)),
        captions_url=s3.object_url(keys.captions_key(call)),
    )
    Segment.create(call_id=call, side="caller", index=0, start=0, end=4.5, state="done", fal_request_id="req-1", attempts=1,
                   video_key=keys.segment_video_key(call, "caller", 0), submitted_at=T0, finished_at=T0 + dt.timedelta(seconds=40))
    return call


def untimed_call() -> str:
    """A failed call the pipeline did not time: the host's row has start and end, no duration."""
    call = sid(2)
    make_call(
        call, video_status=VideoStatus.FAILED, stage=Stage.AUDIO, created_at=T0, recording_duration=42,
        video_error_message="audio: no speech", audio_started_at=T0 + dt.timedelta(seconds=2),
        video_processing_started_at=T0, video_processing_completed_at=T0 + dt.timedelta(seconds=30),
    )
    return call


def without_signatures(view):
    """The view with each URL (videos, transcript, captions) reduced to its path: the API presigns for a browser, the CLI for itself."""
    if isinstance(view, dict):
        return {k: (urlsplit(v).path if k.endswith("_url") and v else without_signatures(v)) for k, v in view.items()}
    if isinstance(view, list):
        return [without_signatures(item) for item in view]
    return view


@pytest.mark.parametrize("make", [timed_call, lambda s3: untimed_call()], ids=["recorded-time", "unrecorded-time"])
def test_the_api_the_page_and_the_cli_agree(web, s3, capsys, make):
    call = make(s3)
    api = web.simulate_get(f"/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json
    assert main(["status", call]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert without_signatures(cli) == without_signatures(api)
    if make is timed_call:
        assert (cli["transcript_status"], urlsplit(cli["transcript_url"]).path, urlsplit(cli["captions_url"]).path) == (
            "completed", f"/{s3.bucket}/{keys.transcript_key(call)}", f"/{s3.bucket}/{keys.captions_key(call)}",
        )
    else:
        assert (cli["transcript_status"], cli["transcript_url"], cli["captions_url"]) == ("none", None, None)

    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    facts = dict(re.findall(r"<dt>(\w+)</dt><dd[^>]*>(.*?)</dd>", page))
    assert facts["Processing"] == duration_text(api["processing"]["seconds"])
    assert duration_text(api["duration"]) in html.unescape(facts["Recording"]).split(" · ")
    for stage, shown in api["stages"].items():
        assert re.search(rf'<tr data-stage="{stage}"><td>{stage}</td><td><span class="badge state-{shown["state"]}">', page)
    for side, shown in api["sides"].items():
        assert f'<tr data-side="{side}"><td>{side}</td><td><span class="badge state-{shown["state"]}">' in page
        assert f'<td class="num">{duration_text(shown["duration"])}</td>' in page
    played = {urlsplit(html.unescape(src)).path for src in re.findall(r'<video[^>]* src="([^"]+)"', page)}
    linked = {urlsplit(html.unescape(href)).path for href in re.findall(r'<a href="([^"]+)">video</a>', page)}
    urls = [api["video_url"], *(s["video_url"] for s in api["sides"].values())]
    assert played == {urlsplit(url).path for url in urls if url}
    assert linked == {urlsplit(s["video_url"]).path for s in api["segments"] if s["video_url"]}


def test_the_one_rule_for_processing_time_and_length(web, s3):
    """The pipeline's recorded duration wins over the timestamps; a decoded length of 0 s is a length."""
    timed, untimed = timed_call(s3), untimed_call()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    first = web.simulate_get(f"/calls/{timed}", headers=auth).json
    assert (first["processing"]["seconds"], first["duration"], first["recording"]["duration"]) == (75, 0.0, 61)
    second = web.simulate_get(f"/calls/{untimed}", headers=auth).json
    assert (second["processing"]["seconds"], second["duration"]) == (30, 42)


def test_a_call_where_nobody_speaks_says_so_in_the_api_the_page_and_the_cli(web, s3, capsys):
    call = timed_call(s3)
    Call.update(no_speech=True).where(Call.id == call).execute()
    api = web.simulate_get(f"/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json
    assert api["no_speech"] is True
    assert main(["status", call]) == 0
    assert json.loads(capsys.readouterr().out)["no_speech"] is True
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    assert re.search(r'<p class="notice" id="no-speech">No one speaks in this recording', page), page

    spoken = untimed_call()
    assert web.simulate_get(f"/calls/{spoken}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json["no_speech"] is False
    assert 'id="no-speech"' not in web.simulate_get(f"/ops/calls/{spoken}", headers=web.cookie).text


def test_the_fal_cost_is_on_the_api_and_the_page_estimate_then_final(web, s3):
    """#26: the estimate while generation runs, then what the jobs cost; a call that never went to fal shows none."""
    call = timed_call(s3)
    Call.update(fal_cost_usd=2.5, fal_cost_final=False).where(Call.id == call).execute()
    api = web.simulate_get(f"/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json
    assert (api["fal_cost_usd"], api["fal_cost_final"]) == (2.5, False)
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    assert '<dd id="call-fal-cost">$2.50 (estimate)</dd>' in page
    Call.update(fal_cost_usd=1.75, fal_cost_final=True).where(Call.id == call).execute()
    assert '<dd id="call-fal-cost">$1.75</dd>' in web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    none = untimed_call()
    assert web.simulate_get(f"/calls/{none}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json["fal_cost_usd"] is None
    assert '<dd id="call-fal-cost">—</dd>' in web.simulate_get(f"/ops/calls/{none}", headers=web.cookie).text
