import re
from pathlib import Path

import pytest

from shared.settings import SettingsError, declared, load_settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_run_embedded():
    s = load_settings({})
    assert s.in_process_broker and not s.uses_s3 and not s.uses_fal
    assert s.effective_database_url.startswith("sqlite:///") and s.effective_database_url.endswith("callreel.db")
    assert s.effective_local_storage_dir == Path(".callreel") / "objects"


def test_values_are_parsed_by_type():
    s = load_settings({"PANEL_WIDTH": "320", "TWILIO_RECORDING_HOSTS": "api.twilio.com, a.example", "TWILIO_VALIDATE_SIGNATURE": "off", "SILENCE_THRESHOLD_DB": "-40.5"})
    assert s.panel_width == 320
    assert s.twilio_recording_hosts == ("api.twilio.com", "a.example")
    assert s.twilio_validate_signature is False
    assert s.silence_threshold_db == -40.5


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                "PANEL_WIDTH": "wide",
                "LOG_FORMAT": "xml",
                "BROKER_URL": "redis://x",
                "PRESIGNED_URL_EXPIRY": "0",
                "TWILIO_ACCOUNT_SID": "nope",
                "VIDEO_STATUS_CALLBACK_URL": "https://host.example/cb",
            }
        )
    message = str(info.value)
    for name in ("PANEL_WIDTH", "LOG_FORMAT", "BROKER_URL", "PRESIGNED_URL_EXPIRY", "TWILIO_ACCOUNT_SID", "VIDEO_STATUS_CALLBACK_SECRET"):
        assert name in message
    assert len(info.value.problems) == 6


def test_the_audio_mix_is_validated():
    s = load_settings({})
    assert (s.audio_mix, s.audio_pan, s.audio_loudness, s.audio_true_peak) == ("centered", 0.3, -16.0, -1.5)
    with pytest.raises(SettingsError) as info:
        load_settings({"AUDIO_MIX": "mono", "AUDIO_PAN": "1.5", "AUDIO_LOUDNESS": "-3", "AUDIO_TRUE_PEAK": "1"})
    assert [p.split("=")[0].split()[0] for p in info.value.problems] == ["AUDIO_MIX", "AUDIO_PAN", "AUDIO_LOUDNESS", "AUDIO_TRUE_PEAK"]
    with pytest.raises(SettingsError, match="AUDIO_PAN"):
        load_settings({"AUDIO_PAN": "-0.1"})
    assert load_settings({"AUDIO_MIX": "recording", "AUDIO_PAN": "1", "AUDIO_LOUDNESS": "-23", "AUDIO_TRUE_PEAK": "-9"}).audio_loudness == -23


def test_require_lists_missing_variables():
    s = load_settings({})
    with pytest.raises(SettingsError) as info:
        s.require(["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"], "by the ingest service")
    assert "TWILIO_AUTH_TOKEN is required by the ingest service" in str(info.value)
    assert "TWILIO_ACCOUNT_SID" in str(info.value)


def test_configuration_table_is_the_generated_one():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, "docs/configuration.md is stale: run .venv/bin/python -m shared.settings --docs"
    for f in declared():
        assert f"`{f.metadata['env']}`" in page


def test_environment_is_read_only_in_the_settings_module():
    """One place for settings: no module reads os.environ / getenv by itself."""
    offenders = []
    pattern = re.compile(r"os\.environ(?!\[\"(PROMETHEUS_MULTIPROC_DIR|prometheus_multiproc_dir)\"\])|os\.getenv|environ\.get")
    for package in ("shared", "services", "callreel"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "shared":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "settings-ok" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "read settings through shared.settings:\n" + "\n".join(offenders)
