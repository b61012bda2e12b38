"""The poster: drawn by FFmpeg, stored beside the video, attached to it as cover art; its failure never fails the video."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from services.compositor import poster
from services.compositor.poster import AVATAR_TOP, FACTS_TOP, HEIGHT, NAME_TOP, WIDTH, PosterText, build_poster_command, poster_text
from shared import keys
from shared.assets import avatar_path
from shared.models import Call
from tests.services.compositor.test_composer import compose, fetch_video, streams, top_level_boxes
from tests.support.calls import make_call
from tests.support.media import frame_at, near, probe

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
CALLER_RING, CALLEE_RING = (0x9A, 0xD0, 0xFF), (0xF3, 0xC4, 0xFF)
CALLER_FACE, CALLEE_FACE = (235, 200, 170), (200, 150, 120)  # the shipped avatars' centre


def draw(tmp_path: Path, text: PosterText, *, font: Path | None = FONT, avatars=None) -> Path:
    output = tmp_path / "poster.jpg"
    avatars = avatars if avatars is not None else {side: avatar_path(side) for side in ("caller", "callee")}
    subprocess.run(build_poster_command(text, avatars, font, output, tmp_path), check=True, capture_output=True)
    return output


def white(frame, x: int, y: int, w: int, h: int) -> int:
    return sum(near(p, (255, 255, 255), 60) for p in frame.region(x, y, w, h))


def test_the_poster_shows_both_avatars_in_their_rings_and_both_names(tmp_path):
    named = frame_at(draw(tmp_path, PosterText("Aria", "Sam: 50% [EU]", "3 Dec 2026 · 14:05 UTC · 2:31")), 0)
    assert (named.width, named.height) == (WIDTH, HEIGHT) == (1200, 630)  # Open Graph's 1.91:1
    # Rings: the left of each circle; faces: its centre (avatars 300 px round, AVATAR_TOP from the top).
    middle = AVATAR_TOP + 150
    assert near(named.pixel(WIDTH // 4 - 155, middle), CALLER_RING) and near(named.pixel(3 * WIDTH // 4 - 155, middle), CALLEE_RING)
    face = AVATAR_TOP + 125
    assert near(named.pixel(WIDTH // 4, face), CALLER_FACE) and near(named.pixel(3 * WIDTH // 4, face), CALLEE_FACE)
    # Outside the circle (its bounding square's corner) is the background, not the avatar's.
    assert near(named.pixel(WIDTH // 4 - 140, AVATAR_TOP + 10), (0x11, 0x18, 0x27), 12)
    names = [white(named, centre - 280, NAME_TOP, 560, 64) for centre in (WIDTH // 4, 3 * WIDTH // 4)]
    assert all(count > 200 for count in names), names
    assert white(named, 300, FACTS_TOP, 600, 36) > 100  # the date and length
    assert white(named, 0, HEIGHT - 90, WIDTH, 90) == 0  # nothing where a player's controls go

    unnamed = frame_at(draw(tmp_path, PosterText("", "", "")), 0)
    assert [white(unnamed, centre - 280, NAME_TOP, 560, 64) for centre in (WIDTH // 4, 3 * WIDTH // 4)] == [0, 0]
    assert white(unnamed, 300, FACTS_TOP, 600, 36) == 0


def test_the_words_go_through_files_and_a_long_name_stays_in_its_half(tmp_path):
    long = "W" * 40
    text = PosterText(poster._short("Aria"), poster._short(long), "")
    command = build_poster_command(text, {"caller": None, "callee": None}, FONT, tmp_path / "p.jpg", tmp_path)
    assert long[:10] not in " ".join(command)  # never spliced into the graph
    assert (tmp_path / "poster-callee.txt").read_text(encoding="utf-8") == "W" * 23 + "…"
    frame = frame_at(draw(tmp_path, text, avatars={"caller": None, "callee": None}), 0)
    assert white(frame, 3 * WIDTH // 4 - 280, NAME_TOP, 560, 64) > 2000  # the Ws, cut at their plate's edges…
    assert white(frame, 420, NAME_TOP - 10, 200, 84) == 0  # …never running into the caller's half (short "Aria" ends well before)


def test_poster_text_uses_the_calls_names_else_the_labels(settings_env):
    settings = settings_env(CALLER_LABEL="Agent", CALLEE_LABEL="Customer")
    call = Call(id=keys.new_call_id(), caller_name="Aria", created_at=dt.datetime(2026, 12, 3, 14, 5, 9))
    text = poster_text(call, settings, 151.4)
    assert (text.caller, text.callee, text.facts) == ("Aria", "Customer", "3 Dec 2026 · 14:05 UTC · 2:31")
    assert poster_text(Call(id=call.id, created_at=None), settings, 3725).facts == "1:02:05"


def test_a_rendered_call_has_its_poster_stored_and_attached_as_cover_art(calls, s3, tmp_path, settings_env, pg_db):
    from services.compositor.stage import columns_of

    settings_env(CALLER_LABEL="Aria", CALLEE_LABEL="Sam")
    call = calls.call(caller_speech=(), callee_speech=())
    outcome = compose(call, s3)
    assert outcome.status == "completed" and outcome.poster_url == s3.object_url(keys.poster_key(call.id))
    assert columns_of(call, outcome)["poster_url"] == outcome.poster_url

    s3.download_file(keys.poster_key(call.id), tmp_path / "poster.jpg")
    stored = frame_at(tmp_path / "poster.jpg", 0)
    assert (stored.width, stored.height) == (1200, 630)
    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    info = probe(video)
    covers = [s for s in info["streams"] if s["disposition"].get("attached_pic")]
    assert [(s["codec_name"], s["width"], s["height"]) for s in covers] == [("mjpeg", 1200, 630)]
    main = streams(info, "video")
    assert main["codec_name"] == "h264" and not main["disposition"]["attached_pic"]
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat")  # still +faststart after the remux
    frame = frame_at(video, 1.0)  # players (and FFmpeg) still play the call, not the cover
    assert (frame.width, frame.height) == (int(main["width"]), int(main["height"]))
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:v:0", "-map", "0:a", "-f", "null", "-"], capture_output=True, text=True
    )
    assert decoded.returncode == 0 and decoded.stderr == ""


@pytest.mark.parametrize("breakage", ["draw", "attach", "upload"])
def test_a_poster_failure_never_fails_the_video(calls, s3, tmp_path, monkeypatch, breakage, caplog):
    if breakage == "draw":
        monkeypatch.setattr(poster, "build_poster_command", lambda *a, **k: ["ffmpeg", "-f", "lavfi", "-i", "nosuchsource", "-y", "x.jpg"])
    elif breakage == "attach":
        broken = ["ffmpeg", "-f", "nosuchformat"]
        monkeypatch.setattr(poster, "attach_command", lambda video, p, output, **k: [*broken[:1], "-i", str(p), *broken[1:], str(output)])
    else:
        real = s3.upload_file

        def upload(path, key, content_type=None):
            if key.endswith(".jpg"):
                raise RuntimeError("the store refused the poster")
            return real(path, key, content_type)

        monkeypatch.setattr(s3, "upload_file", upload)
    call = calls.call(caller_speech=(), callee_speech=())
    outcome = compose(call, s3)
    assert outcome.status == "completed" and outcome.video_url and outcome.poster_url is None
    assert "no poster" in caplog.text
    assert not s3.exists(keys.poster_key(call.id))
    info = probe(fetch_video(s3, call.id, tmp_path / "out.mp4"))
    cover = [s for s in info["streams"] if s["disposition"].get("attached_pic")]
    assert len(cover) == (1 if breakage == "upload" else 0)  # a failed attach leaves the render as it was
    assert streams(info, "video")["codec_name"] == "h264"


def test_the_status_callback_carries_the_poster_url(pg_db):
    from services.compositor.callback import status_payload

    call = make_call(id=keys.new_call_id(), video_status="completed", poster_url="https://store/videos/x.jpg")
    payload = status_payload(call, "e1")
    assert payload["poster_url"] == "https://store/videos/x.jpg"


def test_the_cover_art_remux_keeps_the_captions_track(calls, s3, tmp_path):
    from shared.transcript import Turn
    from tests.services.compositor.test_captions_render import _store

    call = calls.call(captions="track")
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Hello there.")])
    outcome = compose(call, s3)
    assert outcome.status == "completed" and outcome.captions["captions_url"] and outcome.poster_url
    info = probe(fetch_video(s3, call.id, tmp_path / "out.mp4"))
    kinds = [(s["codec_type"], s["codec_name"], s["disposition"].get("attached_pic", 0)) for s in info["streams"]]
    assert kinds == [("video", "h264", 0), ("audio", "aac", 0), ("subtitle", "mov_text", 0), ("video", "mjpeg", 1)], kinds
    assert [s["tags"]["language"] for s in info["streams"] if s["codec_type"] == "subtitle"] == ["eng"]
