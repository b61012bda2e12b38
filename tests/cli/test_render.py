"""``callreel render`` / ``status`` / ``list`` / ``retry`` through a real subprocess, embedded defaults."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import media
from tests.support.env import process_env

CLI = Path(sys.executable).with_name("callreel")


@pytest.fixture
def cli_env(tmp_path):
    env = process_env(HOME=tmp_path)  # with the data and temp folders of the autouse clean_env fixture

    def run(*args, extra=None, timeout=300):
        return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, env={**env, **(extra or {})}, timeout=timeout)

    return run


@pytest.fixture(scope="module")
def short_call(tmp_path_factory):
    return media.tone_call(tmp_path_factory.mktemp("rec") / "call.mp3", 4.0, caller=[(0.3, 1.6)], callee=[(2.0, 3.6)])


def _temp_left(tmp_path):
    return [p for p in (tmp_path / "tmp").rglob("*")]


def test_render_produces_a_playable_split_screen_video(cli_env, short_call, tmp_path):
    out = tmp_path / "out.mp4"
    result = cli_env("render", short_call, "-o", out)
    assert result.returncode == 0, result.stderr
    assert re.search(r"out\.mp4: completed — \d\.\d s of video, \d+\.\d MB, rendered in \d+\.\d s \(call CA[0-9a-f]{32}\)", result.stdout), result.stdout
    # Not a terminal: plain progress lines, one per stage change ("started" may
    # be missed between two polls of a quick stage; "done" never is).
    assert "callreel: audio done in" in result.stderr and "callreel: compositor done in" in result.stderr
    info = media.probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["width"], video["height"], video["codec_name"]) == (1280, 480, "h264")
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert abs(float(info["format"]["duration"]) - 4.0) < 0.2
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True)
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    assert _temp_left(tmp_path) == []
    listed = cli_env("list", "--status", "completed")
    assert listed.returncode == 0 and "completed" in listed.stdout
    call_id = listed.stdout.splitlines()[1].split()[0]
    status = json.loads(cli_env("status", call_id).stdout)
    assert status["status"] == "completed" and status["stages"]["compositor"]["finished_at"]


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.mp3", "no such file"),
        (lambda d: media.mono_file(d / "mono.mp3"), "mono"),
        (lambda d: (d / "notes.mp3").write_text("this is not audio at all\n" * 50) and d / "notes.mp3", "not an audio file"),
        (lambda d: (d / "empty.mp3").write_bytes(b"") or d / "empty.mp3", "empty"),
    ],
    ids=["missing", "mono", "not-audio", "empty"],
)
def test_render_bad_input_fails_with_its_reason(cli_env, tmp_path, make_input, message):
    result = cli_env("render", make_input(tmp_path), "-o", tmp_path / "out.mp4")
    assert result.returncode != 0
    assert message in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_render_refuses_an_output_it_cannot_write(cli_env, short_call, tmp_path):
    result = cli_env("render", short_call, "-o", tmp_path / "no" / "such" / "dir" / "out.mp4")
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = cli_env("render", short_call, "-o", tmp_path)
    assert result.returncode == 1 and "is a directory" in result.stderr


def test_retry_finishes_a_call_without_redoing_finished_stages(cli_env, short_call, tmp_path):
    # Injected failure: an encoder preset libx264 does not know makes the stitch fail.
    out = tmp_path / "out.mp4"
    failed = cli_env("render", short_call, "-o", out, extra={"VIDEO_PRESET": "no-such-preset"})
    assert failed.returncode != 0
    call_id = cli_env("list").stdout.splitlines()[1].split()[0]
    before = json.loads(cli_env("status", call_id).stdout)
    assert before["status"] in ("partial", "failed")
    assert before["stages"]["audio"]["finished_at"] and before["stages"]["audio"]["attempts"] == 1

    retried = cli_env("retry", call_id)
    assert retried.returncode == 0, retried.stderr
    after = json.loads(cli_env("status", call_id).stdout)
    assert after["status"] == "completed"
    assert after["stages"]["audio"] == before["stages"]["audio"]  # not redone
    assert after["stages"]["compositor"]["attempts"] > before["stages"]["compositor"]["attempts"]
    assert cli_env("retry", call_id).returncode == 1  # a completed call is not retried


SAMPLE = Path(__file__).resolve().parents[2] / "callreel" / "samples" / "demo-call.mp3"


def _on_a_terminal(args, env, timeout=300) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return its exit status and what a person saw."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(CLI), *map(str, args)], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode()


def _screen_lines(raw: str) -> list[str]:
    """The lines as the terminal shows them in the end: each \\r\\033[K redraw replaces the line before."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        lines.append(line.split("\r")[-1].replace("\033[K", ""))
    return [line for line in lines if line.strip()]


@pytest.fixture
def tty_env(tmp_path):
    return process_env(HOME=tmp_path, TERM="xterm")


def test_on_a_terminal_a_line_per_stage_the_compose_percentage_and_a_summary(tty_env, tmp_path):
    out = tmp_path / "demo.mp4"
    status, raw = _on_a_terminal(["render", SAMPLE, "-o", out], tty_env)
    assert status == 0, raw
    lines = _screen_lines(raw)
    stages = [line.split()[1] for line in lines if line.lstrip().startswith("✓")]
    assert stages == ["audio", "generation", "compositor"], lines  # a local file has no download to show
    # The compose of the 33 s sample takes seconds: its redraws carry the percentage FFmpeg reports.
    percents = [int(p) for p in re.findall(r"compositor\s+(\d+)%", raw)]
    assert percents and percents == sorted(percents) and max(percents) > 0, raw
    assert not re.search(r"\b(INFO|WARNING|ERROR)\b", raw), raw  # the workers' log went to a file
    assert re.fullmatch(rf"{re.escape(str(out))}: completed — 33\.\d s of video, \d+\.\d MB, rendered in \d+\.\d s \(call CA[0-9a-f]{{32}}\)", lines[-1]), lines
    log = (tmp_path / "data" / "render.log").read_text()
    assert "compose finished in" in log and "Worker has been shut down" in log


def test_on_a_terminal_an_error_is_printed_once(tty_env, tmp_path):
    short = media.tone_call(tmp_path / "call.mp3", 3.0, caller=[(0.3, 1.2)], callee=[(1.6, 2.6)])
    status, raw = _on_a_terminal(["render", short, "-o", tmp_path / "out.mp4"], {**tty_env, "VIDEO_PRESET": "no-such-preset"})
    assert status == 1, raw
    lines = _screen_lines(raw)
    assert raw.count("stitching failed") == 1, raw
    assert re.match(r"  ✗ compositor +\d+\.\d s  (failed|partial)$", lines[-2]), lines
    assert lines[-1].startswith("callreel: ") and "stitching failed" in lines[-1], lines
    assert lines[-1].endswith(f"(log: {tmp_path / 'data' / 'render.log'})"), lines
    assert "Traceback" not in raw and not re.search(r"\b(INFO|ERROR)\b", raw), raw


def test_render_layout_overrides_the_configured_one_for_this_video(cli_env, short_call, tmp_path):
    out = tmp_path / "out.mp4"
    result = cli_env("render", short_call, "-o", out, "--layout", "vertical", "-q", extra={"VIDEO_LAYOUT": "square"})
    assert result.returncode == 0, result.stderr
    video = next(s for s in media.probe(out)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (1080, 1920)
    refused = cli_env("render", short_call, "-o", out, "--layout", "diagonal")
    assert refused.returncode == 2 and "invalid choice: 'diagonal'" in refused.stderr


FULL_DISK = """
import errno, sys
from pathlib import Path
from callreel import cli
from shared.storage import LocalStorage

def download_file(self, key, path):
    # The disk fills halfway through the video: what was written stays, as on a real full disk.
    data = self.path(key).read_bytes()
    if key.startswith("videos/"):
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    Path(path).write_bytes(data)

LocalStorage.download_file = download_file
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_full_disk_is_one_line_and_leaves_no_truncated_video(cli_env, short_call, tmp_path):
    out = tmp_path / "out" / "call.mp4"
    out.parent.mkdir()
    env = {"PATH": os.environ["PATH"], "CALLREEL_DATA_DIR": str(tmp_path / "data"), "TMP_DIR": str(tmp_path / "tmp"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "render", str(short_call), "-o", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"callreel: cannot write {out}: No space left on device", result.stderr
    assert list(out.parent.iterdir()) == [], "a truncated video (or its temp file) was left"


def test_an_earlier_video_is_replaced_only_by_a_whole_one(cli_env, short_call, tmp_path):
    out = tmp_path / "call.mp4"
    out.write_bytes(b"the earlier render")
    env = {"PATH": os.environ["PATH"], "CALLREEL_DATA_DIR": str(tmp_path / "data"), "TMP_DIR": str(tmp_path / "tmp"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "render", str(short_call), "-o", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 1
    assert out.read_bytes() == b"the earlier render"


def test_render_refuses_to_write_over_its_recording(cli_env, tmp_path):
    recording = media.tone_call(tmp_path / "call.mp3", 2.0)
    before = recording.read_bytes()
    for output in (recording, tmp_path / "." / "call.mp3"):
        result = cli_env("render", recording, "-o", output)
        assert result.returncode == 1
        assert "is the recording itself" in result.stderr and "Traceback" not in result.stderr
    assert recording.read_bytes() == before


def test_render_refuses_captions_over_its_transcript(cli_env, tmp_path):
    recording = media.tone_call(tmp_path / "call.mp3", 2.0)
    transcript = tmp_path / "call.vtt"
    transcript.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\n<v Caller>hello\n")
    before = transcript.read_bytes()
    result = cli_env("render", recording, "-o", tmp_path / "call.mp4", "--transcript", transcript)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "would write its captions over the transcript" in result.stderr, result.stderr
    assert transcript.read_bytes() == before


# -- callreel gc: the local object store keeps what finished calls still serve ----------------


def _objects(tmp_path, call_id):
    root = tmp_path / "data" / "objects"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and call_id in p.name)


def _call_ids(cli_env):
    listed = cli_env("list").stdout.splitlines()[1:]
    return {line.split()[1]: line.split()[0] for line in listed}  # status -> call id


def test_gc_removes_what_finished_calls_no_longer_need(cli_env, short_call, tmp_path):
    assert cli_env("render", short_call, "-o", tmp_path / "done.mp4").returncode == 0
    assert cli_env("render", short_call, "-o", tmp_path / "broken.mp4", extra={"VIDEO_PRESET": "no-such-preset"}).returncode == 1
    ids = _call_ids(cli_env)
    done, broken = ids["completed"], next(i for s, i in ids.items() if s in ("partial", "failed"))
    kept_for_retry = _objects(tmp_path, broken)
    assert f"recordings/{done}.mp3" in _objects(tmp_path, done) and f"videos/{done}.mp4" in _objects(tmp_path, done)

    dry = cli_env("gc", "--dry-run")
    assert dry.returncode == 0 and "would remove" in dry.stdout and f"recordings/{done}.mp3" in _objects(tmp_path, done)

    result = cli_env("gc")
    assert result.returncode == 0, result.stderr
    # What the call's status still links to: the final video and its poster.
    assert _objects(tmp_path, done) == [f"videos/{done}.jpg", f"videos/{done}.mp4"]
    assert _objects(tmp_path, broken) == kept_for_retry  # `callreel retry` needs its inputs
    assert json.loads(cli_env("status", done).stdout)["status"] == "completed"
    assert "removed" in result.stdout

    assert cli_env("gc", "--outputs").returncode == 0
    assert _objects(tmp_path, done) == []
    assert _objects(tmp_path, broken) == kept_for_retry
    assert cli_env("gc").stdout.startswith("nothing to remove")


def test_render_names_and_avatars_of_this_call(cli_env, short_call, tmp_path):
    out = tmp_path / "out.mp4"
    avatar = tmp_path / "face.jpg"
    media.ffmpeg("-f", "lavfi", "-i", "color=c=red:s=400x400", "-frames:v", "1", str(avatar))
    result = cli_env(
        "render", short_call, "-o", out, "-q", "--caller-name", "王小明", "--callee-name", "Renée Ørsted", "--caller-avatar", avatar
    )
    assert result.returncode == 0, result.stderr
    call_id = re.search(r"\(call (CA[0-9a-f]{32})\)", result.stdout).group(1)
    status = json.loads(cli_env("status", call_id).stdout)
    assert status["presentation"] == {
        "caller_name": "王小明",
        "callee_name": "Renée Ørsted",
        "caller_avatar_url": "uploaded",
        "callee_avatar_url": None,
        "video_layout": None,
        "captions": None,
    }
    frame = media.frame_at(out, 2.0)
    assert media.near(frame.pixel(320, 240), (255, 0, 0))  # the caller's local panel shows its own avatar
    assert not media.near(frame.pixel(960, 240), (255, 0, 0))  # the callee's the shipped one


def test_render_refuses_a_bad_avatar_or_name_before_any_work(cli_env, short_call, tmp_path):
    small = tmp_path / "small.png"
    media.ffmpeg("-f", "lavfi", "-i", "color=c=red:s=100x100", "-frames:v", "1", str(small))
    text = tmp_path / "face.png"
    text.write_text("not an image")
    result = cli_env("render", short_call, "-o", tmp_path / "out.mp4", "--caller-avatar", small, "--callee-avatar", text)
    assert result.returncode != 0
    assert f"--caller-avatar {small}: 100×100 px: the short side must be at least 256 px" in result.stderr
    assert f"--callee-avatar {text}: not a PNG, JPEG or WebP image" in result.stderr
    assert not (tmp_path / "out.mp4").exists()
    named = cli_env("render", short_call, "-o", tmp_path / "out.mp4", "--caller-name", "a\nb")
    assert named.returncode == 2 and "the name has control characters (U+000A)" in named.stderr
