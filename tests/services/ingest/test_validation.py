"""Field checks of the recording status callback (pure functions, no server)."""

import pytest

from services.ingest.validation import InvalidWebhook, check_recording_url, parse_hosts, parse_recording_status

ACCOUNT = "AC" + "a" * 32
CALL = "CA" + "b" * 32
RECORDING = "RE" + "c" * 32
URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}"
HOSTS = ("api.twilio.com",)


def form(**overrides):
    values = {
        "AccountSid": ACCOUNT,
        "CallSid": CALL,
        "RecordingSid": RECORDING,
        "RecordingUrl": URL,
        "RecordingStatus": "completed",
        "RecordingDuration": "42",
        "RecordingChannels": "2",
        "RecordingSource": "StartCallRecordingAPI",
        "RecordingStartTime": "Mon, 22 Aug 2011 08:13:07 +0000",
        "ErrorCode": "0",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_a_complete_callback_is_parsed():
    status = parse_recording_status(form(), recording_hosts=HOSTS)
    assert (status.account_sid, status.call_sid, status.recording_sid) == (ACCOUNT, CALL, RECORDING)
    assert (status.status, status.duration, status.channels, status.recording_url) == ("completed", 42, 2, URL)
    assert status.start_time.year == 2011 and status.error_code == 0


def test_every_problem_is_listed_at_once():
    with pytest.raises(InvalidWebhook) as error:
        parse_recording_status(form(CallSid=None, RecordingSid="RE123", RecordingChannels="two"), recording_hosts=HOSTS)
    text = str(error.value)
    assert "CallSid is required" in text and "RecordingSid must be RE" in text and "RecordingChannels" in text
    assert len(error.value.problems) == 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("AccountSid", "AC" + "A" * 32),  # SIDs are lowercase hex
        ("AccountSid", "CA" + "a" * 32),
        ("CallSid", "CA" + "b" * 31),
        ("CallSid", "../../etc/passwd"),
        ("RecordingSid", "RE" + "c" * 33),
        ("RecordingStatus", "done"),
        ("RecordingDuration", "-5"),
        ("RecordingDuration", "1e3"),
        ("RecordingChannels", "3"),
        ("RecordingSource", "<script>"),
        ("RecordingStartTime", "yesterday"),
        ("ErrorCode", "x"),
    ],
)
def test_malformed_fields_are_refused(field, value):
    with pytest.raises(InvalidWebhook) as error:
        parse_recording_status(form(**{field: value}), recording_hosts=HOSTS)
    assert field in str(error.value)


@pytest.mark.parametrize("missing", ["RecordingUrl", "RecordingDuration", "RecordingChannels", "AccountSid", "RecordingStatus"])
def test_completed_recordings_need_their_url_duration_and_channels(missing):
    with pytest.raises(InvalidWebhook, match=f"{missing} is required"):
        parse_recording_status(form(**{missing: None}), recording_hosts=HOSTS)


def test_absent_recordings_need_only_their_ids():
    status = parse_recording_status(
        form(RecordingStatus="absent", RecordingUrl=None, RecordingDuration=None, RecordingChannels=None),
        recording_hosts=HOSTS,
    )
    assert status.status == "absent" and status.recording_url is None and status.channels is None


def test_unknown_duration_is_none():
    assert parse_recording_status(form(RecordingDuration="-1"), recording_hosts=HOSTS).duration is None


@pytest.mark.parametrize(
    "url, problem",
    [
        (URL.replace("https://", "http://"), "must be https"),
        (URL.replace("api.twilio.com", "evil.example.com"), "not an allowed Twilio host"),
        (URL.replace("api.twilio.com", "api.twilio.com.evil.example.com"), "not an allowed Twilio host"),
        (URL.replace("api.twilio.com", "api.twilio.com:8443"), "not an allowed Twilio host"),
        (URL.replace("https://", "https://user:pw@"), "credentials"),
        (URL + "?x=1", "must be https://<twilio host>"),
        (URL.replace(RECORDING, "RE" + "d" * 32), "must be https://<twilio host>"),
        (URL.replace(ACCOUNT, "AC" + "e" * 32), "must be https://<twilio host>"),
        (URL + "/../../other", "must be https://<twilio host>"),
        ("https://[::1/x", "not a valid URL"),
        ("file:///etc/passwd", "must be https"),
    ],
)
def test_recording_urls_outside_the_allow_list_are_refused(url, problem):
    with pytest.raises(ValueError, match=problem):
        check_recording_url(url, account_sid=ACCOUNT, recording_sid=RECORDING, hosts=HOSTS)


def test_host_entries_with_a_port_allow_only_that_port():
    local = f"https://127.0.0.1:8443/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}"
    assert check_recording_url(local, account_sid=ACCOUNT, recording_sid=RECORDING, hosts=["127.0.0.1:8443"]) == local
    with pytest.raises(ValueError):
        check_recording_url(local, account_sid=ACCOUNT, recording_sid=RECORDING, hosts=["127.0.0.1"])
    with pytest.raises(ValueError):
        check_recording_url(local.replace("8443", "9443"), account_sid=ACCOUNT, recording_sid=RECORDING, hosts=["127.0.0.1:8443"])
    # A bare host means 443, written or not; host names are case-insensitive.
    explicit = URL.replace("api.twilio.com", "API.Twilio.com:443")
    assert check_recording_url(explicit, account_sid=ACCOUNT, recording_sid=RECORDING, hosts=HOSTS) == explicit
    assert parse_hosts(["api.twilio.com", " localhost:8443 "]) == {("api.twilio.com", 443), ("localhost", 8443)}
