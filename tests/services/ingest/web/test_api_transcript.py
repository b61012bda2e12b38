"""``PUT /calls/{callId}/transcript``: the host application's transcript, checked whole, stored, shown and announced.

Through the Falcon app on PostgreSQL, moto's S3 server and the in-process broker.
"""

import json
import urllib.request

import falcon.testing
import pytest
from dramatiq import Message

from services.compositor.callback import status_payload
from services.ingest.app import create_app
from shared import keys
from shared.models import Call, Stage, TranscriptStatus, VideoStatus
from tests.services.ingest.conftest import API_TOKEN, post_callback
from tests.support.fake_twilio import call_sid
from tests.support.objects import put

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

TURNS = [
    {"speaker": "caller", "start": 0.5, "end": 2.0, "text": "Hello, this is the clinic."},
    {"speaker": "callee", "start": 2.2, "end": 4.0, "text": "Hi, I need an appointment."},
]
VTT = """WEBVTT

00:00:00.500 --> 00:00:02.000
<v AI agent>Hello, this is the clinic.</v>

00:00:02.200 --> 00:00:04.000
<v Customer>Hi, I need an appointment.</v>
"""
SRT = """1
00:00:00,500 --> 00:00:02,000
Caller: Hello, this is the clinic.

2
00:00:02,200 --> 00:00:04,000
Customer: Hi, I need an appointment.
"""
EXPECTED = {"turns": TURNS}


@pytest.fixture
def api(pg_db, stub_broker, ingest_env, s3):
    ingest_env(TRANSCRIPT_MAX_BYTES="2000")
    return falcon.testing.TestClient(create_app())


def put_transcript(api, call: str, body: bytes | str, content_type: str | None = "application/json", query: str = "", headers=AUTH):
    sent = dict(headers)
    if content_type:
        sent["Content-Type"] = content_type
    data = body.encode() if isinstance(body, str) else body
    return api.simulate_put(f"/calls/{call}/transcript", body=data, headers=sent, query_string=query or None)


def stored(s3, call: str) -> dict | None:
    if not s3.exists(keys.transcript_key(call)):
        return None
    with urllib.request.urlopen(s3.presigned_url(keys.transcript_key(call)), timeout=10) as answer:
        return json.loads(answer.read())


def finished_call(s3, **columns) -> str:
    call = call_sid()
    put(s3, keys.video_key(call), b"video", "video/mp4")
    Call.create(
        id=call, recording_sid="RE" + call[2:], recording_duration=5, audio_duration=4.5, recording_channels=2,
        video_status=VideoStatus.COMPLETED, stage=Stage.DONE, video_url=s3.object_url(keys.video_key(call)), **columns,
    )
    return call


def compose_messages(broker):
    return [(m.actor_name, m.kwargs) for m in (Message.decode(data) for data in broker.queues["compositor"].queue)] if "compositor" in broker.queues else []


@pytest.mark.parametrize(
    "body, content_type, query",
    [
        (json.dumps(TURNS), "application/json", ""),
        (json.dumps({"turns": TURNS}), "application/json; charset=utf-8", ""),
        (VTT, "text/vtt", ""),
        (SRT, "application/x-subrip", ""),
        (SRT, "text/plain", ""),  # sniffed
        (VTT, None, ""),  # sniffed
        (SRT, "application/octet-stream", "format=srt"),
    ],
    ids=["json-list", "json-turns", "vtt", "srt", "srt-sniffed", "vtt-no-type", "format-param"],
)
def test_each_format_is_stored_as_json_turns_and_the_call_says_supplied(api, s3, body, content_type, query):
    call = finished_call(s3)
    answer = put_transcript(api, call, body, content_type, query)

    assert answer.status_code == 200, answer.text
    assert stored(s3, call) == EXPECTED
    row = Call.get_by_id(call)
    assert (row.transcript_status, row.transcript_error) == (TranscriptStatus.SUPPLIED, None)
    assert row.transcript_url == s3.object_url(keys.transcript_key(call))
    # The answer is the call's view, with a presigned link to the stored transcript, as for videos.
    assert (answer.json["id"], answer.json["transcript_status"], answer.json["rerender"]) == (call, "supplied", False)
    assert "X-Amz-Signature" in answer.json["transcript_url"]
    with urllib.request.urlopen(answer.json["transcript_url"], timeout=10) as link:
        assert json.loads(link.read()) == EXPECTED


def test_the_calls_own_names_are_accepted_as_speakers(api, s3):
    call = finished_call(s3, caller_name="Ava", callee_name="Mr. Okafor")
    vtt = VTT.replace("AI agent", "ava").replace("Customer", "Mr.  Okafor")
    assert put_transcript(api, call, vtt, "text/vtt").status_code == 200
    assert stored(s3, call) == EXPECTED


BAD = [
    ("malformed JSON", '[{"speaker": "caller", "start": 0.5,', "application/json", ["line 1: malformed JSON"]),
    ("not a list", '{"speaker": "caller"}', "application/json", ["JSON transcript must be a list of turns"]),
    (
        "times outside the call and an unknown speaker, all named",
        json.dumps([
            {"speaker": "caller", "start": 0.5, "end": 2.0, "text": "fine"},
            {"speaker": "robot", "start": 1, "end": 2, "text": "who?"},
            {"speaker": "callee", "start": 3, "end": 9.5, "text": "too late"},
            {"speaker": "callee", "start": -1, "end": 1, "text": "too early"},
        ]),
        "application/json",
        ["turn 2: unknown speaker 'robot'", "turn 3: end 9.5 s is after the end of the call (4.5 s)", "turn 4: start -1 s is before the call"],
    ),
    ("vtt without voices", "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHello\n", "text/vtt", ["line 4: cue has no voice tag"]),
    ("srt with an unknown name", SRT.replace("Customer:", "Robot:"), "application/x-subrip", ["line 7: unknown speaker 'Robot'"]),
    ("srt with a broken time", SRT.replace("00:00:02,200", "00:0x:02,200"), "application/x-subrip", ["line 6: unreadable time"]),
    ("not UTF-8", b"WEBVTT\n\n\xff\xfe", "text/vtt", ["line 3: not UTF-8 text"]),
    ("empty", "", "application/json", ["transcript is empty"]),
]


@pytest.mark.parametrize("body, content_type, problems", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_with_every_problem_named_and_nothing_stored(api, s3, body, content_type, problems):
    call = finished_call(s3)
    answer = put_transcript(api, call, body, content_type)

    assert answer.status_code == 400, answer.text
    errors = answer.json["errors"]
    assert len(errors) == len(problems), errors
    for error, expected in zip(errors, problems):
        assert error.startswith(expected), errors
    assert stored(s3, call) is None
    row = Call.get_by_id(call)
    assert (row.transcript_status, row.transcript_url) == (TranscriptStatus.NONE, None)


def test_a_new_bad_file_leaves_the_good_one_in_place(api, s3):
    call = finished_call(s3)
    assert put_transcript(api, call, json.dumps(TURNS)).status_code == 200
    assert put_transcript(api, call, "[1, 2]").status_code == 400
    assert stored(s3, call) == EXPECTED and Call.get_by_id(call).transcript_status == TranscriptStatus.SUPPLIED


def test_over_the_size_limit_is_refused_unread(api, s3):
    call = finished_call(s3)
    big = json.dumps([{**TURNS[0], "text": "x" * 2100}])
    answer = put_transcript(api, call, big)
    assert answer.status_code == 400
    assert answer.json["errors"] == ["transcript is over the limit of 2000 bytes (TRANSCRIPT_MAX_BYTES)"]
    assert stored(s3, call) is None


def test_a_chunked_upload_is_read_only_up_to_the_limit(api, s3):
    """No Content-Length (chunked, which gunicorn ends itself): the body is cut off after the limit, not read whole."""

    class Endless:
        """A body that never ends, counting what is read of it."""

        def __init__(self) -> None:
            self.given = 0

        def read(self, size: int = -1) -> bytes:
            assert size > 0, "the body was read without a limit"
            self.given += size
            return b"[" + b" " * (size - 1)

        readline = read

        def readlines(self, hint: int = -1) -> list[bytes]:
            return [self.read(hint)]

        def __iter__(self):
            return self

        def __next__(self) -> bytes:
            return self.read(1024)

    call = finished_call(s3)
    endless = Endless()
    answer = api.simulate_request(
        "PUT", f"/calls/{call}/transcript", headers={**AUTH, "Content-Type": "application/json"},
        extras={"wsgi.input": endless, "wsgi.input_terminated": True},
    )
    assert answer.status_code == 400 and "TRANSCRIPT_MAX_BYTES" in answer.json["errors"][0]
    assert endless.given == 2001
    assert stored(s3, call) is None


def test_a_chunked_upload_under_the_limit_is_read_whole(api, s3):
    import io

    call = finished_call(s3)
    answer = api.simulate_request(
        "PUT", f"/calls/{call}/transcript", headers={**AUTH, "Content-Type": "text/vtt"},
        extras={"wsgi.input": io.BytesIO(VTT.encode()), "wsgi.input_terminated": True},
    )
    assert answer.status_code == 200, answer.text
    assert stored(s3, call) == EXPECTED


def test_an_unknown_content_type_or_format_is_refused(api, s3):
    call = finished_call(s3)
    assert put_transcript(api, call, json.dumps(TURNS), "multipart/form-data; boundary=x").status_code == 415
    answer = put_transcript(api, call, json.dumps(TURNS), query="format=docx")
    assert answer.status_code == 400 and answer.json["errors"] == ["format must be one of json, vtt, srt, not 'docx'"]
    assert put_transcript(api, "not-a-call-sid", json.dumps(TURNS)).status_code == 400
    assert stored(s3, call) is None


def test_the_token_is_required(api, s3):
    call = finished_call(s3)
    assert put_transcript(api, call, json.dumps(TURNS), headers={}).status_code == 401
    assert put_transcript(api, call, json.dumps(TURNS), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert stored(s3, call) is None and Call.get_by_id(call).transcript_status == TranscriptStatus.NONE


def test_before_the_webhook_the_transcript_waits_in_a_row_the_webhook_claims(api, s3, fake_twilio, stub_broker):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingDuration="3")
    call = form["CallSid"]
    # No recording yet: the length is unknown, so a turn past Twilio's 3 s is not refused now.
    late = TURNS + [{"speaker": "caller", "start": 4.5, "end": 6.0, "text": "Still there?"}]
    answer = put_transcript(api, call, json.dumps(late))
    assert answer.status_code == 200, answer.text
    placeholder = Call.get_by_id(call)
    assert (placeholder.recording_sid, placeholder.transcript_status) == (None, TranscriptStatus.SUPPLIED)

    webhook = post_callback(api, fake_twilio, form)
    assert webhook.status_code == 202 and webhook.json["result"] == "queued"
    row = Call.get_by_id(call)
    assert (row.recording_sid, row.video_status, row.stage) == (form["RecordingSid"], VideoStatus.PENDING, Stage.INGEST)
    assert (row.transcript_status, row.transcript_url) == (TranscriptStatus.SUPPLIED, s3.object_url(keys.transcript_key(call)))
    assert stored(s3, call) == {"turns": late}
    # The webhook stays idempotent: its retry is a duplicate, and one download was queued.
    assert post_callback(api, fake_twilio, form).json["result"] == "duplicate"
    assert [m.actor_name for m in (Message.decode(d) for d in stub_broker.queues["ingest"].queue)] == ["download_recording"]


def test_after_the_webhook_the_transcript_is_checked_against_twilios_length(api, s3, fake_twilio):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingDuration="3")
    call = form["CallSid"]
    assert post_callback(api, fake_twilio, form).status_code == 202
    # Twilio's whole seconds get a second of slack until the audio stage decodes the real length.
    late = [{"speaker": "caller", "start": 1, "end": 3.8, "text": "ok"}, {"speaker": "callee", "start": 3.5, "end": 6, "text": "too late"}]
    refused = put_transcript(api, call, json.dumps(late))
    assert refused.status_code == 400 and refused.json["errors"] == ["turn 2: end 6 s is after the end of the call (4 s)"]
    assert put_transcript(api, call, json.dumps(late[:1])).status_code == 200
    assert Call.get_by_id(call).recording_sid == form["RecordingSid"]
    assert post_callback(api, fake_twilio, form).json["result"] == "duplicate"


def test_rerender_sends_a_finished_call_back_to_the_compositor(api, s3, stub_broker):
    done = finished_call(s3)
    answer = put_transcript(api, done, json.dumps(TURNS), query="rerender=true")
    assert answer.status_code == 200 and answer.json["rerender"] is True
    assert compose_messages(stub_broker) == [("compose", {"call_id": done, "rerender": True})]

    running = call_sid()
    Call.create(id=running, recording_sid="RE" + running[2:], recording_duration=5, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    answer = put_transcript(api, running, json.dumps(TURNS), query="rerender=1")
    assert answer.status_code == 200 and answer.json["rerender"] is False  # its compose is still to come
    assert len(compose_messages(stub_broker)) == 1


def test_the_status_api_and_the_callback_carry_the_transcript_fields(api, s3):
    call = finished_call(
        s3, transcript_status=TranscriptStatus.FAILED, transcript_error="fal speech-to-text: 500",
        captions_url=s3.object_url(keys.captions_key(call_sid())),  # another call's captions: never signed
    )
    view = api.simulate_get(f"/calls/{call}", headers=AUTH).json
    assert (view["transcript_status"], view["transcript_error"]) == ("failed", "fal speech-to-text: 500")
    assert (view["transcript_url"], view["captions_url"]) == (None, None)

    put(s3, keys.captions_key(call), b"WEBVTT\n", "text/vtt")
    Call.update(captions_url=s3.object_url(keys.captions_key(call))).where(Call.id == call).execute()
    assert put_transcript(api, call, json.dumps(TURNS)).status_code == 200
    view = api.simulate_get(f"/calls/{call}", headers=AUTH).json
    assert (view["transcript_status"], view["transcript_error"]) == ("supplied", None)
    with urllib.request.urlopen(view["captions_url"], timeout=10) as captions:
        assert captions.read() == b"WEBVTT\n"

    payload = status_payload(Call.get_by_id(call), "event-1")
    assert payload["transcript_status"] == "supplied" and payload["transcript_error"] is None
    assert payload["transcript_url"] == s3.object_url(keys.transcript_key(call))
    assert payload["captions_url"] == s3.object_url(keys.captions_key(call))
