"""The split with the real FFmpeg: separation measured on the outputs, speech where the generator put it."""

from __future__ import annotations

import pytest

from services.audio.probe import probe_recording
from services.audio.split import build_command, split_recording
from shared.errors import PermanentError
from shared.ffmpeg import FFmpegTimeout
from tests.support import media
from tests.support.processes import alive, wait_gone

CALLER = ((0.5, 3.0), (4.0, 4.6), (5.5, 6.0))
CALLEE = ((1.5, 3.5), (5.2, 6.0))  # overlaps the caller: both channels carry sound at once


def run_split(path, workdir, settings):
    info = probe_recording(path, ffprobe="ffprobe", max_seconds=settings.recording_max_seconds, workdir=workdir)
    return split_recording(path, workdir, info, settings)


def within(found, expected, tolerance=0.2):
    return len(found) == len(expected) and all(
        abs(fs - es) <= tolerance and abs(fe - ee) <= tolerance for (fs, fe), (es, ee) in zip(found, expected)
    )


@pytest.fixture
def workdir(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_one_pass_decodes_once_and_writes_both_sides(tmp_path, workdir, settings_env):
    settings = settings_env()
    call = media.tone_call(tmp_path / "call.mp3", 2.0)
    info = probe_recording(call, ffprobe="ffprobe", max_seconds=60, workdir=workdir)
    command = build_command(call, {"caller": workdir / "a.mp3", "callee": workdir / "b.mp3"}, info, settings)
    assert command.count("-i") == 1
    graph = command[command.index("-filter_complex") + 1]
    assert "silencedetect" in graph and "mono=1" in graph and "channelsplit" in graph and "pan=" not in graph
    # Two side MP3s, and the measuring branch into the null muxer.
    assert command.count("-map") == 3 and " -f null - " in " ".join(command)


def test_each_side_holds_only_its_channel(tmp_path, workdir, settings_env):
    settings = settings_env()
    result = run_split(media.tone_call(tmp_path / "call.mp3", 6.5, CALLER, CALLEE), workdir, settings)
    caller, callee = result.sides["caller"].path, result.sides["callee"].path
    for path in (caller, callee):
        stream = media.probe(path)["streams"][0]
        assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == ("mp3", 1, "8000")

    # 2.0–2.25 s: both speak. Each file has its own tone, the other's at least 40 dB down.
    left, right = media.pcm(caller, 2.0, 2.25), media.pcm(callee, 2.0, 2.25)
    assert media.dominant_hz(left) == 440
    assert media.dominant_hz(right) == 880
    assert media.tone_db(left, 880) < media.tone_db(left, 440) - 40
    assert media.tone_db(right, 440) < media.tone_db(right, 880) - 40
    # 0.8–1.3 s: only the caller speaks; the callee's file is silent.
    assert media.level_db(media.pcm(caller, 0.8, 1.3)) > -30
    assert media.level_db(media.pcm(callee, 0.8, 1.3)) < -60


def test_durations_and_speech_intervals(tmp_path, workdir, settings_env):
    settings = settings_env()
    result = run_split(media.tone_call(tmp_path / "call.mp3", 6.5, CALLER, CALLEE), workdir, settings)
    assert result.duration == pytest.approx(6.5, abs=0.01)
    assert result.sides["caller"].duration == result.sides["callee"].duration == result.duration
    assert within(result.sides["caller"].speech, CALLER), result.sides["caller"].speech
    assert within(result.sides["callee"].speech, CALLEE), result.sides["callee"].speech
    # Each output decodes to the recording's length (the duration is not an MP3 header's guess).
    decoded = len(media.pcm(result.sides["callee"].path)) / 8000
    assert decoded == pytest.approx(6.5, abs=0.01)


def test_a_current_ffmpeg_measures_the_same_speech(tmp_path, workdir, settings_env):
    """The service images carry a newer FFmpeg than Debian 12's; its log lines differ (imageio-ffmpeg, dev extra)."""
    import imageio_ffmpeg

    call = media.tone_call(tmp_path / "call.mp3", 6.5, CALLER, CALLEE)
    system = run_split(call, workdir, settings_env())
    current_dir = tmp_path / "current"
    current_dir.mkdir()
    current = run_split(call, current_dir, settings_env(FFMPEG_BINARY=imageio_ffmpeg.get_ffmpeg_exe()))
    assert within(current.sides["caller"].speech, CALLER), current.sides["caller"].speech
    assert within(current.sides["callee"].speech, CALLEE), current.sides["callee"].speech
    assert current.duration == system.duration


def test_swapped_mapping(tmp_path, workdir, settings_env):
    settings = settings_env(CALLER_CHANNEL="right")
    result = run_split(media.tone_call(tmp_path / "call.mp3", 6.5, CALLER, CALLEE), workdir, settings)
    assert media.dominant_hz(media.pcm(result.sides["caller"].path, 2.0, 2.25)) == 880
    assert media.dominant_hz(media.pcm(result.sides["callee"].path, 2.0, 2.25)) == 440
    assert within(result.sides["caller"].speech, CALLEE)
    assert within(result.sides["callee"].speech, CALLER)


def test_silent_side_and_a_click(tmp_path, workdir, settings_env):
    settings = settings_env(SPEECH_MIN_DURATION="0.1")
    # The callee only clicks (40 ms): that is not speech.
    result = run_split(media.tone_call(tmp_path / "call.mp3", 3.0, ((0.0, 3.0),), ((1.5, 1.54),)), workdir, settings)
    assert result.sides["callee"].speech == []
    assert within(result.sides["caller"].speech, ((0.0, 3.0),))


def test_wav_input(tmp_path, workdir, settings_env):
    settings = settings_env()
    wav = media.tone_call(tmp_path / "call.wav", 6.5, CALLER, CALLEE)
    recording = tmp_path / "recording"
    recording.write_bytes(wav.read_bytes())
    result = run_split(recording, workdir, settings)
    assert result.duration == 6.5
    assert within(result.sides["caller"].speech, CALLER, 0.05)
    assert within(result.sides["callee"].speech, CALLEE, 0.05)
    assert media.dominant_hz(media.pcm(result.sides["caller"].path, 2.0, 2.25)) == 440


def test_ten_minute_call(tmp_path, workdir, settings_env):
    settings = settings_env()
    caller = [(t + 0.5, t + 4.0) for t in range(0, 600, 10)]
    callee = [(t + 5.0, t + 9.0) for t in range(0, 600, 10)]
    result = run_split(media.tone_call(tmp_path / "long.mp3", 600.0, caller, callee), workdir, settings)
    assert result.duration == pytest.approx(600.0, abs=0.01)
    assert within(result.sides["caller"].speech, caller)
    assert within(result.sides["callee"].speech, callee)


def test_two_voices(tmp_path, workdir, settings_env):
    settings = settings_env()
    call = media.speech_call(tmp_path / "voices.mp3", "Hello, this is the clinic calling.", "Oh hi. Yes, speaking.", gap=1.0)
    result = run_split(call, workdir, settings)
    caller, callee = result.sides["caller"], result.sides["callee"]
    assert caller.speech and callee.speech
    # Turns: every caller interval ends before the callee starts answering.
    assert caller.speech[-1][1] <= callee.speech[0][0]
    # While the caller speaks, the callee's file is silent.
    for start, end in caller.speech:
        assert media.level_db(media.pcm(callee.path, start, end)) < -60
        assert media.level_db(media.pcm(caller.path, start, end)) > -40


def test_truncated_recording(tmp_path, workdir, settings_env):
    settings = settings_env()
    whole = media.tone_call(tmp_path / "call.mp3", 6.5, CALLER, CALLEE).read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[: len(whole) // 5])
    with pytest.raises(PermanentError, match="truncated or corrupt"):
        run_split(cut, workdir, settings)


def test_timeout_kills_the_process_group(tmp_path, workdir, settings_env, slow_ffmpeg):
    wrapper, pids = slow_ffmpeg
    settings = settings_env(FFMPEG_BINARY=str(wrapper), SPLIT_TIMEOUT="1")
    call = media.tone_call(tmp_path / "call.mp3", 30.0, CALLER, CALLEE)  # -re: 30 s of work unless killed
    with pytest.raises(FFmpegTimeout, match="timed out after 1 s"):
        run_split(call, workdir, settings)
    wrapper_pid, ffmpeg_pid = int((pids / "wrapper").read_text()), int((pids / "ffmpeg").read_text())
    assert not alive(wrapper_pid)
    # The wrapper's child (only a group kill reaches it) dies in its own time: give it a moment.
    wait_gone(ffmpeg_pid)
