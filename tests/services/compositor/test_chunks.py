"""A long call rendered in time chunks (services/compositor/chunks.py): real FFmpeg, PostgreSQL and S3.

A 12 s call with COMPOSE_CHUNK_SECONDS=4 is three chunks. The chunked video
is checked against the same call rendered in one pass: the same frames, the
same sound to the sample, and no jump at the joins larger than between two
frames inside a chunk.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.compositor import chunks
from services.compositor.graph import windowed
from services.compositor.layout import Piece
from shared import keys
from shared.compose_chunks import ChunkState, ComposeChunk
from shared.ffmpeg import consecutive_ssim, seam_report
from shared.models import Call
from shared.transcript import Transcript, Turn, to_json
from tests.support.media import probe

from .test_composer import compose, fetch_video

FPS = 25


def test_windows_cover_the_call_and_move_to_a_segment_boundary_nearby():
    windows = chunks.plan_windows(12.0, FPS, 4.0)
    assert windows == [(0, 100), (100, 200), (200, 300)]
    # A segment ends at 4.4 s (frame 110), within a quarter chunk of the 4 s cut: the cut moves there.
    assert chunks.plan_windows(12.0, FPS, 4.0, [0.5, 4.4, 11.0]) == [(0, 110), (110, 200), (200, 300)]
    assert chunks.plan_windows(3.0, FPS, 4.0) == [(0, 75)]


def test_a_window_keeps_only_its_frames_of_each_piece():
    pieces = [Piece(50, None), Piece(100, 0), Piece(150, None)]
    # Frames 120-220: the clip's last 30 (its first 70 skipped, its 100 trimmed at the end), then 70 idle frames.
    assert windowed(pieces, (120, 220)) == [(Piece(100, 0), 70), (Piece(70, None), 0)]
    assert windowed(pieces, None) == [(p, 0) for p in pieces]


def audio_samples(video: Path) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:a", "-f", "s16le", "-"], check=True, capture_output=True
    ).stdout


def frame_count(video: Path) -> int:
    stream = next(s for s in probe(video)["streams"] if s["codec_type"] == "video")
    return int(stream.get("nb_frames") or 0)


@pytest.fixture
def long_call(calls):
    """12 s: the caller generated in three segments (seams in its silences), the callee a local panel."""
    call = calls.call(
        duration=12.0,
        caller_speech=((0.5, 3.0), (4.5, 7.0), (8.5, 11.0)),
        callee_speech=((3.2, 4.2), (7.2, 8.2)),
        caller_state="generated",
    )
    for index, (start, end, colour) in enumerate(((0.0, 4.0, "red"), (4.0, 8.0, "green"), (8.0, 12.0, "blue"))):
        calls.segment(call, "caller", index, start, end, calls.video(f"seg{index}", colour, duration=4.0))
    # A burned caption on screen across the join at 4 s: it must run on in the next chunk.
    transcript = calls.workdir / f"{call.id}.json"
    transcript.write_text(to_json(Transcript((Turn("callee", 3.2, 4.8, "words across the join"),))), encoding="utf-8")
    calls.storage.upload_file(transcript, keys.transcript_key(call.id), content_type="application/json")
    return call


def test_a_long_call_in_chunks_is_the_one_pass_render_without_a_seam(long_call, s3, settings_env, stub_broker, tmp_path):
    settings_env(COMPOSE_CHUNK_SECONDS="0")
    single = compose(long_call, s3)
    assert single.status == "completed"
    whole = fetch_video(s3, long_call.id, tmp_path / "whole.mp4")

    settings_env(COMPOSE_CHUNK_SECONDS="4")
    Call.update(stage="compositor").where(Call.id == long_call.id).execute()
    outcome = compose(long_call, s3)
    assert outcome.status == "completed"
    joined = fetch_video(s3, long_call.id, tmp_path / "joined.mp4")

    # The whole call, frame for frame; the sound is the one-pass render's to the sample (rendered in one pass too).
    assert frame_count(joined) == frame_count(whole) == 12 * FPS
    assert audio_samples(joined) == audio_samples(whole)
    # The joins (at 4 s and 8 s) add no jump of their own: across each, the picture changes as much as
    # in the one-pass render (where the caller's segments meet, a colour change), and in the callee's
    # panel, where nothing is cut, no more than between the frames around the join.
    for one, two in zip(seam_report(whole, [4.0, 8.0], fps=FPS), seam_report(joined, [4.0, 8.0], fps=FPS), strict=True):
        assert two.across == pytest.approx(one.across, abs=0.01), (one, two)
    stream = next(s for s in probe(joined)["streams"] if s["codec_type"] == "video")
    width, height = stream["width"], stream["height"]
    for seam in seam_report(joined, [4.0, 8.0], fps=FPS, region=(width // 2, 0, width // 2, height)):
        assert seam.invisible, seam
    # And a chunk's frames are the one-pass render's (the same graph, the same encoder settings),
    # the burned caption across the 4 s join included (its band of the callee's panel, compared alone).
    for at in (3.96, 4.0, 8.0, 11.0):
        pair = compare(whole, joined, at, tmp_path)
        assert pair > 0.97, (at, pair)
    band = f"crop={width // 2}:{height // 4}:{width // 2}:{3 * height // 4}"
    for at in (3.96, 4.0, 4.04):  # ~0.97: the encoder's noise on the dense waveform under the words
        assert compare(whole, joined, at, tmp_path, crop=band) > 0.95, at
    # Against the band with no words on it (5.5 s): far apart, so the caption is what was compared.
    assert compare(joined, whole, 4.0, tmp_path, crop=band, other_at=5.5) < 0.8
    # The chunks were rows while the call was rendered: they and their videos are gone now it is stored.
    assert ComposeChunk.select().where(ComposeChunk.call_id == long_call.id).count() == 0
    assert not any(key.startswith("chunks/") for key in s3_keys(s3))


def compare(a: Path, b: Path, at: float, tmp_path: Path, *, crop: str = "", other_at: float | None = None) -> float:
    """SSIM between the frames of ``a`` at ``at`` and ``b`` at ``other_at`` (or ``at``) seconds, of the ``crop`` only if given."""
    frames = []
    for n, (video, when) in enumerate(((a, at), (b, at if other_at is None else other_at))):
        out = tmp_path / f"frame-{n}-{when}.png"
        picture = ["-vf", crop] if crop else []
        command = ["ffmpeg", "-v", "error", "-y", "-ss", f"{when}", "-i", str(video), *picture, "-frames:v", "1", str(out)]
        subprocess.run(command, check=True)
        frames.append(out)
    result = subprocess.run(
        ["ffmpeg", "-v", "info", "-i", str(frames[0]), "-i", str(frames[1]), "-lavfi", "ssim", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr
    return float(result.rsplit("All:", 1)[1].split()[0])


def s3_keys(storage) -> list[str]:
    client, bucket = storage.client, storage.bucket
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_chunk_is_rendered_once_by_whichever_replica_takes_it(long_call, s3, settings_env, stub_broker, monkeypatch, tmp_path):
    """A redelivered chunk message renders nothing; the coordinator joins the chunk another replica rendered."""
    from services.compositor import stage
    from services.compositor.composer import chunk_spec

    settings = settings_env(COMPOSE_CHUNK_SECONDS="4")
    call = Call.get_by_id(long_call.id)
    workdir = tmp_path / "plan"
    workdir.mkdir()
    spec = chunk_spec(call, settings, s3, workdir)
    windows = chunks.plan_windows(12.0, FPS, 4.0, [0.0, 4.0, 8.0, 12.0])
    digests = chunks.chunk_digests(spec, windows, settings)
    assert len(set(digests)) == 3  # each chunk its own digest
    chunks.ensure_rows(call.id, windows, digests)
    plan = digests[1]

    renders = []
    real = chunks.render_chunk
    monkeypatch.setattr(chunks, "render_chunk", lambda *a, **k: renders.append(a[1]) or real(*a, **k))
    stage.compose_chunk(call.id, 1, plan)  # another replica
    stage.compose_chunk(call.id, 1, plan)  # the same message, redelivered
    stage.compose_chunk(call.id, 2, "0" * 32)  # a message of an older plan
    row = ComposeChunk.get((ComposeChunk.call_id == call.id) & (ComposeChunk.index == 1))
    assert renders == [(100, 200)] and row.state == ChunkState.DONE and row.attempts == 1
    assert s3.exists(keys.chunk_video_key(call.id, plan, 1))

    outcome = compose(long_call, s3)  # the coordinator: renders chunks 0 and 2, takes 1 from the store
    assert outcome.status == "completed"
    assert sorted(renders) == [(0, 100), (100, 200), (200, 300)]
    joined = fetch_video(s3, long_call.id, tmp_path / "joined.mp4")
    assert frame_count(joined) == 12 * FPS
    ssim = consecutive_ssim(joined, start=3.8, frames=10, fps=FPS)
    assert min(ssim) > 0.9, ssim


def test_a_chunk_whose_renderer_died_is_pending_again_and_a_live_ones_is_not(pg_db):
    from shared import owners

    dead = f"{owners.me().host}.999999999.1"
    row = dict(index=0, plan="a" * 32, first_frame=0, last_frame=10, state=ChunkState.RENDERING)
    rows = [
        ComposeChunk.create(call_id=keys.new_call_id(), owner=tag, **row)
        for tag in (dead, owners.me().tag, "0badc0de.1.1")  # gone; this process; another host's (cannot be told)
    ]
    chunks.reclaim_dead(rows)
    states = [ComposeChunk.get_by_id(r.id).state for r in rows]
    assert states == [ChunkState.PENDING, ChunkState.RENDERING, ChunkState.RENDERING]


def test_every_chunk_has_exactly_its_windows_frames(calls, s3, settings_env, stub_broker, tmp_path):
    """Segments longer than their 1 s clips (held by tpad) and cut inside a chunk: no frame repeated past the window."""
    from services.compositor.composer import chunk_spec, segment_boundaries

    settings = settings_env(COMPOSE_CHUNK_SECONDS="2", VIDEO_FPS="15", PANEL_WIDTH="320", PANEL_HEIGHT="240")
    call = calls.call(duration=10.0, caller_state="generated", callee_state="generated")
    spans = {"caller": ((0.0, 5.0), (5.0, 10.0)), "callee": ((0.0, 2.75), (2.75, 7.75), (7.75, 10.0))}
    for side, segments in spans.items():
        for index, (start, end) in enumerate(segments):
            calls.segment(call, side, index, start, end, calls.video(f"{side}{index}", "navy", size="64x64", duration=1.0))
    workdir = tmp_path / "chunks"
    workdir.mkdir()
    spec = chunk_spec(Call.get_by_id(call.id), settings, s3, workdir)
    windows = chunks.plan_windows(10.0, 15, 2.0, segment_boundaries(call.id))
    assert windows == [(0, 30), (30, 60), (60, 90), (90, 116), (116, 150)]  # the 7.75 s boundary is near the 8 s cut
    for first, last in windows[1:3]:  # each shows a clip held past its end and cut at the window's start
        out = tmp_path / f"chunk-{first}.mp4"
        chunks.render_chunk(spec, (first, last), out, settings, {})
        assert frame_count(out) == last - first, (first, last)  # 32 before the output was capped at the window
