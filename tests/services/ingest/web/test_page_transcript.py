"""The transcript on the operator's call page: under the video, speaker by speaker with times, escaped, each time a seek link."""

import html
import json
import re

import pytest

from services.ingest.web.fragments import clock_text
from shared import keys
from shared.models import Call, Stage, TranscriptStatus, VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.fake_twilio import call_sid
from tests.support.objects import put

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOSTILE = "<script>alert(1)</script> \u202eevil\u202c مرحبا 🙂 \" ' &amp;"


@pytest.fixture
def web(operator_client):
    return operator_client


def a_call(s3, *, video: bool = True, **columns) -> str:
    call = call_sid()
    if video:
        put(s3, keys.video_key(call), b"video", "video/mp4")
    Call.create(
        id=call, recording_sid="RE" + call[2:], recording_duration=80, recording_channels=2, stage=Stage.DONE,
        video_status=VideoStatus.COMPLETED if video else VideoStatus.FAILED,
        video_url=s3.object_url(keys.video_key(call)) if video else None, **columns,
    )
    return call


def supply(web, call: str, turns: list[dict]) -> None:
    answer = web.simulate_put(f"/calls/{call}/transcript", body=json.dumps(turns), headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text


def turns_of(page: str) -> list[str]:
    return re.findall(r'<li class="turn [^"]*"[^>]*>.*?</li>', page, re.S)


def test_the_transcript_is_under_the_video_each_time_linking_to_it(web, s3):
    call = a_call(s3, caller_name="Ava")
    supply(web, call, [
        {"speaker": "callee", "start": 2.25, "end": 4, "text": "Hi."},
        {"speaker": "caller", "start": 0.5, "end": 2, "text": "Hello, clinic."},
        {"speaker": "caller", "start": 65, "end": 70, "text": "Anything else?"},
    ])
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text

    # Right under the final video, above the side videos, so a line clicked and the player are seen together.
    assert page.index('id="final-video"') < page.index('id="transcript"') < page.index('id="sides"') < page.index('id="timeline"')
    src = html.unescape(re.search(r'<video id="final-video"[^>]* src="([^"]+)"', page)[1])
    rows = turns_of(page)
    assert len(rows) == 3
    shown = [(re.search(r'data-seek="([^"]+)"', r)[1], re.search(r"<time[^>]*>([^<]+)</time>", r)[1],
              re.search(r'<bdi class="speaker">([^<]*)</bdi>', r)[1], re.search(r'<span class="text" dir="auto">([^<]*)</span>', r)[1])
             for r in rows]
    assert shown == [("0.5", "0:00.5", "Ava", "Hello, clinic."), ("2.25", "0:02.2", "Customer", "Hi."), ("65", "1:05.0", "Ava", "Anything else?")]
    # Without script, each time opens the video at that moment (a media fragment of the same URL the player plays).
    hrefs = [html.unescape(re.search(r'<a class="seek" href="([^"]+)"', r)[1]) for r in rows]
    assert hrefs == [f"{src}#t=0.5", f"{src}#t=2.25", f"{src}#t=65"]
    assert all('data-video="final-video"' in r for r in rows)
    assert "onclick" not in page and "<script>" not in page.split("</head>")[1].replace('<script src="/ops/static/operator.js"', "")


def test_hostile_words_and_names_are_shown_as_text(web, s3):
    call = a_call(s3, caller_name='<img src=x onerror="alert(2)">')
    supply(web, call, [{"speaker": "caller", "start": 0.5, "end": 2, "text": HOSTILE}])
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text

    (row,) = turns_of(page)
    assert "<script>alert" not in page and "<img src=x" not in page
    text = re.search(r'<span class="text" dir="auto">([^<]*)</span>', row)[1]
    assert html.unescape(text) == HOSTILE.strip()
    assert html.unescape(re.search(r'<bdi class="speaker">([^<]*)</bdi>', row)[1]) == '<img src=x onerror="alert(2)">'


def test_without_a_final_video_the_times_are_plain(web, s3):
    call = a_call(s3, video=False)
    supply(web, call, [{"speaker": "caller", "start": 0.5, "end": 2, "text": "Hello."}])
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    (row,) = turns_of(page)
    assert "data-seek" not in row and "<time" in row and "Hello." in row


@pytest.mark.parametrize(
    "status, error, shown",
    [
        (TranscriptStatus.NONE, None, "No transcript: none was supplied"),
        (TranscriptStatus.TRANSCRIBING, None, "Speech-to-text is running"),
        (TranscriptStatus.FAILED, "fal speech-to-text answered 500 <b>", "fal speech-to-text answered 500 &lt;b&gt;"),
    ],
)
def test_a_call_without_words_says_why(web, s3, status, error, shown):
    call = a_call(s3, transcript_status=status, transcript_error=error)
    page = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie).text
    section = re.search(r'<section class="transcript" id="transcript">.*?</section>', page, re.S)[0]
    assert f'badge state-{status}">{status}</span>' in section and shown in section and not turns_of(page)


def test_a_stored_transcript_that_cannot_be_read_is_said_not_a_broken_page(web, s3):
    call = a_call(s3, transcript_status=TranscriptStatus.COMPLETED, transcript_url="s3://somewhere/transcripts/x.json")
    missing = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie)
    assert missing.status_code == 200 and "is missing from the store" in missing.text
    put(s3, keys.transcript_key(call), b"not json", "application/json")
    broken = web.simulate_get(f"/ops/calls/{call}", headers=web.cookie)
    assert broken.status_code == 200 and "cannot be read: line 1: malformed JSON" in broken.text


@pytest.mark.parametrize("seconds, text", [(0, "0:00.0"), (7.46, "0:07.4"), (0.3, "0:00.3"), (59.96, "0:59.9"), (723, "12:03.0"), (3723.04, "1:02:03.0")])
def test_clock_text(seconds, text):
    assert clock_text(seconds) == text
