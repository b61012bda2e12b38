"""With FAL_KEY set, the audio stage cuts each speaking side's fal segments (generation has no FFmpeg)."""

from __future__ import annotations

import pytest

from shared import keys
from shared.fal_models import model_for, segment_limit
from shared.models import Call, Segment, SegmentState, Stage
from shared.segments import plan_jobs
from tests.support import media

from .conftest import CALL_ID, queued, tmp_entries

CALLER = ((0.5, 3.0), (7.0, 9.0))


def expected_jobs(call: Call, side: str, settings):
    model = model_for(settings.fal_model)
    return plan_jobs(
        call.audio_duration,
        [tuple(i) for i in call.speech(side)],
        mode=settings.generation_mode,
        max_seconds=segment_limit(model, settings.segment_max_seconds),
        padding=settings.speech_padding,
        min_billed=model.min_seconds,
        pack=settings.speech_packing,
    )


def expected_plan(call: Call, side: str, settings) -> list[tuple[float, float]]:
    return [(job.start, job.end) for job in expected_jobs(call, side, settings)]


def rows(side: str) -> list[Segment]:
    return list(Segment.select().where((Segment.call_id == CALL_ID) & (Segment.side == side)).order_by(Segment.index))


def check_cut(s3, tmp_path, segment: Segment, hz: int | None) -> None:
    local = tmp_path / f"seg-{segment.side}-{segment.index}.mp3"
    s3.download_file(segment.audio_key, local)
    samples = media.pcm(local)
    assert len(samples) / 8000 == pytest.approx(segment.seconds, abs=0.01)
    if hz:
        middle = len(samples) // 2
        assert media.dominant_hz(samples[middle - 1000 : middle + 1000]) == hz


@pytest.fixture
def fal_settings(settings_env):
    return lambda **extra: settings_env(FAL_KEY="test-key:secret", **extra)


def test_speech_mode_segments(pg_db, s3, make_call, split, stub_broker, tmp_path, fal_settings):
    settings = fal_settings(GENERATION_MODE="speech", SPEECH_PACKING="false")
    make_call(media.tone_call(tmp_path / "call.mp3", 12.0, CALLER, ()))
    split()
    call = Call.get_by_id(CALL_ID)
    assert call.stage == Stage.GENERATION

    caller = rows("caller")
    planned = expected_plan(call, "caller", settings)
    assert planned and [(r.start, r.end) for r in caller] == planned
    assert all(r.pieces is None for r in caller)  # contiguous
    for index, segment in enumerate(caller):
        assert (segment.index, segment.state) == (index, SegmentState.PENDING)
        assert segment.audio_key == keys.segment_audio_key(CALL_ID, "caller", index)
        check_cut(s3, tmp_path, segment, 440 if any(s <= (segment.start + segment.end) / 2 <= e for s, e in CALLER) else None)
    assert rows("callee") == []  # silent: nothing to pay for
    assert len(queued(stub_broker, "generation")) == 2
    assert tmp_entries(settings) == []


@pytest.mark.parametrize(
    ("model", "segment_max", "limit"),
    [
        ("fal-ai/bytedance/omnihuman/v1.5", "120", 59.0),  # SEGMENT_MAX_SECONDS never passes the model's limit
        ("fal-ai/stable-avatar", "20", 20.0),  # a long side in short segments: parallel jobs (#26)
    ],
)
def test_full_mode_cuts_at_the_segment_limit_in_silences(pg_db, s3, make_call, split, tmp_path, fal_settings, model, segment_max, limit):
    settings = fal_settings(GENERATION_MODE="full", FAL_MODEL=model, SEGMENT_MAX_SECONDS=segment_max)
    speech = [(t + 0.5, t + 6.0) for t in range(0, 80, 8)]
    make_call(media.tone_call(tmp_path / "call.mp3", 80.0, speech, speech))
    split()
    call = Call.get_by_id(CALL_ID)
    for side in ("caller", "callee"):
        segments = rows(side)
        assert len(segments) >= 80 // limit and [(r.start, r.end) for r in segments] == expected_plan(call, side, settings)
        # Every seam falls in a silence, where the avatar is at rest.
        assert not any(s < r.end < e for r in segments[:-1] for s, e in call.speech(side))
        assert segments[0].start == 0 and segments[-1].end == pytest.approx(80.0, abs=0.01)
        assert all(r.end - r.start <= limit for r in segments)
        assert all(a.end == b.start for a, b in zip(segments, segments[1:]))  # contiguous: the whole side
    check_cut(s3, tmp_path, rows("callee")[1], None)


def test_a_whole_side_segment_is_the_side_audio_itself(pg_db, s3, make_call, split, tmp_path, fal_settings, monkeypatch):
    """Within the model's limit, full mode's one segment a side is the side's MP3: no FFmpeg cut."""
    from services.audio import segments as cutting

    commands = []
    original = cutting.cut_command
    monkeypatch.setattr(cutting, "cut_command", lambda *a, **k: commands.append(a) or original(*a, **k))
    settings = fal_settings(GENERATION_MODE="full")
    make_call(media.tone_call(tmp_path / "call.mp3", 12.0, CALLER, ((4.0, 6.0),)))
    split()
    call = Call.get_by_id(CALL_ID)
    assert commands == []
    for side in ("caller", "callee"):
        (segment,) = rows(side)
        assert (segment.start, segment.end) == (0.0, call.audio_duration) == expected_plan(call, side, settings)[0]
        whole, cut = tmp_path / f"{side}.mp3", tmp_path / f"{side}-segment.mp3"
        s3.download_file(keys.side_audio_key(CALL_ID, side), whole)
        s3.download_file(segment.audio_key, cut)
        assert cut.read_bytes() == whole.read_bytes()
        check_cut(s3, tmp_path, segment, None)
    assert tmp_entries(settings) == []


def test_retried_audio_stage_keeps_rows_consistent(pg_db, s3, make_call, split, tmp_path, fal_settings):
    """An operator retry from the audio stage with another mode: rows follow the new plan, no duplicates."""
    fal_settings(GENERATION_MODE="speech")
    make_call(media.tone_call(tmp_path / "call.mp3", 12.0, CALLER, ()))
    split()
    before = [(r.start, r.end) for r in rows("caller")]
    settings = fal_settings(GENERATION_MODE="full")
    Call.update(stage=Stage.AUDIO, audio_finished_at=None).where(Call.id == CALL_ID).execute()
    split()
    call = Call.get_by_id(CALL_ID)
    after = [(r.start, r.end) for r in rows("caller")]
    assert after == expected_plan(call, "caller", settings) and after != before
    assert Segment.select().count() == len(after)
    for segment in rows("caller"):
        check_cut(s3, tmp_path, segment, None)


def test_speech_mode_packs_a_sides_stretches_into_one_job(pg_db, s3, make_call, split, stub_broker, tmp_path, fal_settings):
    """Packing (the default): the caller's two stretches, 3.7 s apart, are one job whose audio leaves the gap out."""
    settings = fal_settings(GENERATION_MODE="speech")
    make_call(media.tone_call(tmp_path / "call.mp3", 12.0, CALLER, ()))
    split()
    call = Call.get_by_id(CALL_ID)
    (segment,) = rows("caller")
    (job,) = expected_jobs(call, "caller", settings)
    assert segment.pieces == [list(piece) for piece in job.pieces]
    (a_start, a_end, a_offset), (b_start, b_end, b_offset) = segment.pieces
    # Each stretch is the speech padded by SPEECH_PADDING (the measured speech is within a frame of the tones).
    assert (a_start, a_end) == pytest.approx((0.5 - 0.15, 3.0 + 0.15), abs=0.05)
    assert (b_start, b_end) == pytest.approx((7.0 - 0.15, 9.0 + 0.15), abs=0.05)
    assert (segment.start, segment.end) == (a_start, b_end)
    assert a_offset == 0 and b_offset == pytest.approx(a_end - a_start, abs=0.001)
    assert segment.seconds == pytest.approx((a_end - a_start) + (b_end - b_start), abs=0.002)
    check_cut(s3, tmp_path, segment, None)  # as long as its pieces added
    local = tmp_path / "packed.mp3"
    s3.download_file(segment.audio_key, local)
    # The tone fills each piece's middle; the join (0.15 s of silence either side of it) is quiet.
    for start, end, offset in segment.pieces:
        middle = offset + (end - start) / 2
        assert media.dominant_hz(media.pcm(local, middle - 0.2, middle + 0.2)) == 440
    assert media.level_db(media.pcm(local, b_offset - 0.1, b_offset + 0.1)) < -40
    assert tmp_entries(settings) == []
    # Done again (a redelivered message after the stage was reopened): the same plan, the same row, nothing added.
    Call.update(stage=Stage.AUDIO, audio_finished_at=None).where(Call.id == CALL_ID).execute()
    split()
    (again,) = rows("caller")
    assert (again.id, again.start, again.end, again.pieces) == (segment.id, segment.start, segment.end, segment.pieces)
    assert Segment.select().count() == 1


def test_a_packed_cut_lays_its_pieces_end_to_end(tmp_path, settings_env):
    """One FFmpeg run: each piece trimmed from the side and joined; each tone lands at its piece's offset."""
    from services.audio.segments import PlannedSegment, cut_side
    from services.audio.split import SideAudio

    settings = settings_env()
    tones = ((1.0, 3.0, 300), (8.0, 10.0, 600), (15.0, 16.5, 900))
    expr = "+".join(f"0.5*sin(2*PI*{hz}*t)*between(t,{a},{b})" for a, b, hz in tones)
    side = tmp_path / "side.mp3"
    media.ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{expr}':s=8000:d=20", "-c:a", "libmp3lame", "-q:a", "5", str(side))
    pieces = ((0.85, 3.15, 0.0), (7.85, 10.15, 2.3), (14.85, 16.65, 4.6))
    packed = PlannedSegment(0, 0.85, 16.65, tmp_path / "packed.mp3", pieces)
    plain = PlannedSegment(1, 7.85, 10.15, tmp_path / "plain.mp3")
    cut_side(SideAudio(side, 20.0, [[a, b] for a, b, _ in tones]), [packed, plain], tmp_path, settings)

    samples = media.pcm(packed.path)
    assert len(samples) / 8000 == pytest.approx(2.3 + 2.3 + 1.8, abs=0.01)
    for (_, _, hz), (start, end, offset) in zip(tones, pieces, strict=True):
        middle = offset + (end - start) / 2
        assert media.dominant_hz(media.pcm(packed.path, middle - 0.3, middle + 0.3)) == hz
        # The tone starts 0.15 s into its piece (the padding): silent just before, sounding just after.
        assert media.level_db(media.pcm(packed.path, offset + 0.02, offset + 0.12)) < -40
        assert media.tone_db(media.pcm(packed.path, offset + 0.2, offset + 0.3), hz) > -20
    assert len(media.pcm(plain.path)) / 8000 == pytest.approx(2.3, abs=0.01)
    assert media.dominant_hz(media.pcm(plain.path, 1.0, 1.3)) == 600
