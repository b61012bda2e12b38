import pytest

from shared.fal_models import model_for
from shared.segments import MIN_SEGMENT, plan_segments, silences

FIVE_MINUTE_MODEL = model_for("fal-ai/stable-avatar").max_audio_seconds


def conversation(duration: float, turn: float = 7.0, pause: float = 1.2) -> list[tuple[float, float]]:
    """One side of a call: it talks for ``turn`` seconds, then is silent while the other side answers."""
    speech, t = [], 0.8
    while t + turn < duration:
        speech.append((round(t, 2), round(t + turn, 2)))
        t += turn + pause + turn  # the other side's turn and two pauses
    return speech


def inside_silence(point: float, speech) -> bool:
    return all(not (s < point < e) for s, e in speech)


def test_twelve_minute_side_for_a_five_minute_model():
    speech = conversation(720.0)
    segments = plan_segments(720.0, speech, mode="full", max_seconds=FIVE_MINUTE_MODEL)
    assert len(segments) == 3
    # The whole side, contiguous, in order, none too long for the model.
    assert segments[0][0] == 0.0 and segments[-1][1] == 720.0
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert all(0 < end - start <= FIVE_MINUTE_MODEL for start, end in segments)
    # Every cut is in a silence: no word is split between two fal jobs.
    assert all(inside_silence(end, speech) for _, end in segments[:-1])
    # Cuts are as late as the limit allows (few jobs), not at the first silence.
    assert segments[0][1] > FIVE_MINUTE_MODEL - 20


def test_speech_mode_covers_only_speech():
    speech = [(5.0, 8.0), (8.4, 9.0), (30.0, 33.0)]
    segments = plan_segments(60.0, speech, mode="speech", max_seconds=FIVE_MINUTE_MODEL, padding=0.3)
    # Close stretches merge; far ones stay apart; padding around each.
    assert segments == [(4.7, 9.3), (29.7, 33.3)]
    assert sum(e - s for s, e in segments) < 10
    assert plan_segments(60.0, speech, mode="full", max_seconds=FIVE_MINUTE_MODEL) == [(0.0, 60.0)]


def test_a_side_that_never_speaks_costs_nothing():
    assert plan_segments(60.0, [], mode="full", max_seconds=FIVE_MINUTE_MODEL) == []
    assert plan_segments(60.0, [], mode="speech", max_seconds=FIVE_MINUTE_MODEL) == []


def test_short_utterances_are_widened_to_the_minimum():
    segments = plan_segments(20.0, [(10.0, 10.2)], mode="speech", max_seconds=FIVE_MINUTE_MODEL, padding=0.3)
    assert len(segments) == 1
    start, end = segments[0]
    assert end - start == pytest.approx(MIN_SEGMENT) and start < 10.0 and end > 10.2
    # At the very start of the call it cannot widen backwards.
    assert plan_segments(20.0, [(0.0, 0.1)], mode="speech", max_seconds=FIVE_MINUTE_MODEL) == [(0.0, MIN_SEGMENT)]


def test_no_tiny_last_segment():
    # 600.5 s of talk with no silence: cutting every 299 s would leave 2.5 s, and
    # a cut at 600 would leave 0.5 s; the last piece is never under MIN_SEGMENT.
    segments = plan_segments(600.5, [(0.0, 600.5)], mode="full", max_seconds=300)
    assert all(e - s >= MIN_SEGMENT for s, e in segments)
    assert all(e - s <= 300 for s, e in segments)
    assert segments[-1][1] == 600.5


def test_long_speech_stretch_is_split_for_a_short_model():
    infinitalk = model_for("fal-ai/infinitalk").max_audio_seconds
    speech = [(0.5, 20.0), (20.8, 45.0), (45.6, 70.0)]
    segments = plan_segments(80.0, speech, mode="speech", max_seconds=infinitalk)
    assert all(e - s <= infinitalk for s, e in segments)
    assert segments[0][0] == 0.2 and segments[-1][1] == 70.3
    assert all(inside_silence(e, speech) for _, e in segments[:-1])


def test_silences_between_and_around_speech():
    assert silences([(1.0, 2.0), (3.0, 4.0)], 5.0) == [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]


def test_bad_arguments():
    with pytest.raises(ValueError):
        plan_segments(10.0, [(1.0, 2.0)], mode="everything", max_seconds=60)
    with pytest.raises(ValueError):
        plan_segments(10.0, [(1.0, 2.0)], mode="full", max_seconds=MIN_SEGMENT)
