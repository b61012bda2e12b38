import itertools
import math
import random

import pytest

from shared.fal_models import model_for
from shared.segments import MIN_SEGMENT, billed_grouping, billed_seconds, plan_segments, silences

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


# -- billing-aware grouping (#26) ---------------------------------------------------------------

STABLE_AVATAR = model_for("fal-ai/stable-avatar")  # $0.10 a second, at least 4 s a job


def test_short_stretches_a_little_apart_are_one_job_when_that_bills_less():
    # Two short answers 2 s apart: two jobs bill 4 + 4 s; one through the gap bills 6.5 s.
    speech = [(10.0, 12.25), (14.25, 16.5)]
    kept_apart = plan_segments(40.0, speech, mode="speech", max_seconds=60, padding=0.0)
    grouped = plan_segments(40.0, speech, mode="speech", max_seconds=60, padding=0.0, min_billed=STABLE_AVATAR.min_seconds)
    assert kept_apart == [(10.0, 12.25), (14.25, 16.5)]
    assert grouped == [(10.0, 16.5)]
    assert (billed_seconds(grouped, 4), billed_seconds(kept_apart, 4)) == pytest.approx((6.5, 8.0))


def test_turns_far_apart_stay_separate_jobs():
    # A side's silences are mostly the other side's turns: generating through a 5 s answer costs more than a second minimum.
    speech = [(1.0, 4.5), (9.5, 13.0), (18.0, 21.5)]
    grouped = plan_segments(30.0, speech, mode="speech", max_seconds=60, padding=0.0, min_billed=4)
    assert grouped == speech


def test_no_run_of_stretches_spans_more_than_the_limit():
    speech = [(float(t), t + 1.0) for t in range(0, 60, 3)]  # 1 s every 3 s: merging all would bill least
    grouped = plan_segments(60.0, speech, mode="speech", max_seconds=10, padding=0.0, merge_gap=0.0, min_billed=4)
    assert all(end - start <= 10 for start, end in grouped)
    assert 1 < len(grouped) < len(speech)
    assert all(any(a <= s and e <= b for a, b in grouped) for s, e in speech)


@pytest.mark.parametrize("seed", range(40))
def test_grouping_bills_the_least_of_every_partition(seed):
    """Against brute force over every way of cutting a side's stretches into consecutive jobs."""
    rng = random.Random(seed)
    stretches, at = [], 0.0
    for _ in range(rng.randint(2, 8)):
        at += rng.uniform(0.2, 6.0)
        length = rng.uniform(0.3, 5.0)
        stretches.append((at, at + length))
        at += length
    limit, minimum = rng.choice([8.0, 15.0, 60.0]), rng.choice([0.0, 2.0, 4.0])
    grouped = billed_grouping(stretches, min_billed=minimum, max_seconds=limit)

    def cost(runs):
        return billed_seconds(runs, minimum)

    best = math.inf
    for mask in itertools.product((False, True), repeat=len(stretches) - 1):  # True: a new job starts after stretch i
        runs, first = [], 0
        for i, new in enumerate([*mask, True]):
            if new:
                runs.append((stretches[first][0], stretches[i][1]))
                first = i + 1
        if all(i == j or stretches[j][1] - stretches[i][0] <= limit for (i, j) in _bounds(mask)):
            best = min(best, cost(runs))
    assert cost(grouped) == pytest.approx(best)
    # The runs cover every stretch, in order, and never join past the limit.
    assert grouped[0][0] == stretches[0][0] and grouped[-1][1] == stretches[-1][1]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(grouped))


def _bounds(mask):
    first = 0
    for i, new in enumerate([*mask, True]):
        if new:
            yield first, i
            first = i + 1


def test_bench_calls_turns_bill_no_more_than_before():
    """The bench's two-voice call (bench/media.py: turns of 1.3–4.8 s, the other side's ~5 s answer between).

    Grouping never bills more than one job a turn; on this pattern it cannot
    bill less either: every gap is longer than the 4 s minimum, so the floor for
    jobs of contiguous audio is sum(max(turn, 4 s)), about 1.19 × the speech
    (see docs/fal-cost.md, "Billed seconds against speech").
    """
    caller = [(0.8, 5.57), (10.51, 14.62), (19.28, 23.3), (28.39, 31.25), (36.89, 41.37), (46.19, 49.62), (53.36, 58.13)]
    before = billed_seconds(plan_segments(60.0, caller, mode="speech", max_seconds=60), 4)
    after = plan_segments(60.0, caller, mode="speech", max_seconds=60, min_billed=4)
    assert billed_seconds(after, 4) <= before
    assert len(after) == len(caller)


# -- packing (#26, second round) ----------------------------------------------------------------

from shared.segments import Job, job_seconds, packed_jobs, plan_jobs  # noqa: E402


def pack(duration, speech, **options):
    return plan_jobs(duration, speech, mode="speech", pack=True, **{"max_seconds": 60, "min_billed": 4, **options})


def billed(jobs, minimum=4):
    return sum(max(job.seconds, minimum) for job in jobs)


def test_packing_lays_a_sides_turns_end_to_end_in_one_job():
    # Three 3.5 s turns 5 s apart (the other side's answers) and a 1 s one: 11.5 s of speech.
    speech = [(1.0, 4.5), (9.5, 13.0), (18.0, 21.5), (30.0, 31.0)]
    (job,) = pack(40.0, speech, padding=0.0)
    assert job == Job(1.0, 31.0, ((1.0, 4.5, 0.0), (9.5, 13.0, 3.5), (18.0, 21.5, 7.0), (30.0, 31.0, 10.5)))
    assert job.seconds == 11.5 and billed([job]) == 11.5  # contiguous jobs: 4 + 4 + 4 + 4 = 16 s
    # With padding, each stretch is padded on both sides and the offsets follow.
    (padded,) = pack(40.0, speech, padding=0.15)
    assert padded.pieces == ((0.85, 4.65, 0.0), (9.35, 13.15, 3.8), (17.85, 21.65, 7.6), (29.85, 31.15, 11.4))
    assert padded.seconds == pytest.approx(11.5 + 8 * 0.15)


def test_packing_keeps_short_pauses_and_contiguous_jobs_when_it_cannot_help():
    # A pause under merge_gap is generated through (no flicker to the still); a single stretch stays contiguous.
    assert pack(20.0, [(1.0, 3.0), (3.5, 6.0)], padding=0.0) == [Job(1.0, 6.0)]
    assert pack(20.0, [], padding=0.0) == []
    # Off, or in full mode: the contiguous plan of plan_segments.
    speech = [(1.0, 4.5), (9.5, 13.0)]
    assert plan_jobs(20.0, speech, mode="speech", max_seconds=60, min_billed=4, padding=0.0) == [Job(1.0, 4.5), Job(9.5, 13.0)]
    assert plan_jobs(20.0, speech, mode="full", max_seconds=60, pack=True) == [Job(0.0, 20.0)]


def test_a_lone_short_sound_is_widened_to_the_minimum_segment():
    (job,) = pack(20.0, [(10.0, 10.2)], padding=0.15)
    assert job.pieces is None and job.seconds == pytest.approx(MIN_SEGMENT) and job.start < 9.85 and job.end > 10.35
    # Two "mm"s packed: the first piece grows, clear of the second.
    (two,) = pack(20.0, [(5.0, 5.2), (12.0, 12.2)], padding=0.0)
    assert two.seconds == pytest.approx(MIN_SEGMENT) and two.pieces[0][1] <= 12.0 and two.pieces[1] == (12.0, 12.2, two.pieces[1][2])


@pytest.mark.parametrize("seed", range(30))
def test_packing_bills_the_least_never_passes_the_limit_and_is_deterministic(seed):
    rng = random.Random(seed)
    stretches, at = [], 0.0
    for _ in range(rng.randint(1, 9)):
        at += rng.uniform(1.6, 8.0)
        length = round(rng.uniform(MIN_SEGMENT, 7.0), 2)  # no job to widen (tested above)
        stretches.append((round(at, 2), round(at + length, 2)))
        at += length
    limit, minimum = rng.choice([8.0, 12.0, 60.0]), rng.choice([0.0, 2.0, 4.0])
    jobs = packed_jobs(stretches, min_billed=minimum, max_seconds=limit)
    assert packed_jobs(stretches, min_billed=minimum, max_seconds=limit) == jobs  # a redelivered message plans the same cut
    # Every stretch, in order, once; offsets lay each job's pieces end to end; no job past the limit.
    laid = [tuple(p[:2]) for job in jobs for p in (job.pieces or ((job.start, job.end, 0.0),))]
    assert laid == stretches
    for job in jobs:
        assert job.seconds <= limit + 1e-9
        if job.pieces:
            assert [p[2] for p in job.pieces] == pytest.approx([sum(e - s for s, e, _ in job.pieces[:k]) for k in range(len(job.pieces))])
            assert (job.start, job.end) == (job.pieces[0][0], job.pieces[-1][1])
    best = math.inf
    for mask in itertools.product((False, True), repeat=len(stretches) - 1):
        runs, first = [], 0
        for i, new in enumerate([*mask, True]):
            if new:
                runs.append(sum(e - s for s, e in stretches[first : i + 1]))
                first = i + 1
        if all(run <= limit or count == 1 for run, count in zip(runs, _counts(mask), strict=True)):
            best = min(best, sum(max(run, minimum) for run in runs))
    assert billed(jobs, minimum) == pytest.approx(best)


def _counts(mask):
    count = 1
    for new in mask:
        if new:
            yield count
            count = 1
        else:
            count += 1
    yield count


def test_job_seconds_of_rows():
    assert job_seconds(2.0, 5.5, None) == 3.5
    assert job_seconds(2.0, 30.0, [[2.0, 4.0, 0.0], [20.0, 21.5, 2.0]]) == 3.5


def test_packing_bills_the_bench_calls_within_a_tenth_of_their_speech(tmp_path_factory):
    """Issue #26's goal, on the bench's realistic 5-minute call (bench/media.py), with the default settings."""
    from bench import media as bench_media
    from bench.packing import bill
    from shared.settings import load_settings

    settings = load_settings({})
    call = bench_media.conversation(300.0, tmp_path_factory.mktemp("bench-cache"))
    sides = (call.caller_speech, call.callee_speech)
    packed, contiguous = bill(call.seconds, sides, settings, pack=True), bill(call.seconds, sides, settings, pack=False)
    assert packed.speech > 200 and packed.ratio <= 1.1 < contiguous.ratio
    # Never past the limit: SEGMENT_MAX_SECONDS of audio a job, so a side is still a few jobs run side by side.
    model = model_for(settings.fal_model)
    for intervals in sides:
        jobs = plan_jobs(call.seconds, list(intervals), mode="speech", max_seconds=settings.segment_max_seconds,
                         padding=settings.speech_padding, min_billed=model.min_seconds, pack=True)
        assert len(jobs) >= 2 and all(job.seconds <= settings.segment_max_seconds for job in jobs)


def _turns(count: int, length: float, gap: float, offset: float = 0.0) -> list[tuple[float, float]]:
    return [(offset + i * (length + gap), offset + i * (length + gap) + length) for i in range(count)]


def _jobs(sides, duration, limit):
    return sum(len(plan_jobs(duration, side, mode="speech", max_seconds=limit, min_billed=4.0, pack=True)) for side in sides)


def test_packed_limit_fills_whole_waves_of_the_cap_with_the_shortest_jobs():
    from shared.segments import PACK_FLOOR, packed_limit

    # Two sides of 60 turns of 4 s, 5 s apart: 480 s of speech. Ten slots, two waves: at most 20 jobs.
    sides = [_turns(60, 4.0, 5.0), _turns(60, 4.0, 5.0, offset=4.5)]
    duration = 60 * 9.0 + 5
    limit = packed_limit(sides, duration, slots=10, max_seconds=60.0, min_billed=4.0)
    assert _jobs(sides, duration, limit) <= 20 < _jobs(sides, duration, limit - 0.5)
    # A call whose speech needs more than two waves of the longest job gets as many waves as it needs.
    # (1360 s of speech: three waves of 60 s jobs, then each as short as 30 jobs allow.)
    long_sides, long_duration = [_turns(170, 4.0, 5.0), _turns(170, 4.0, 5.0, offset=4.5)], 170 * 9.0 + 5
    long_limit = packed_limit(long_sides, long_duration, slots=10, max_seconds=60.0, min_billed=4.0)
    assert 30 < long_limit < 60
    assert _jobs(long_sides, long_duration, long_limit) <= 30 < _jobs(long_sides, long_duration, long_limit - 0.5)
    # A short call is held to the floor (never under twice the minimum bill); no cap or no speech: the limit given.
    short = [_turns(3, 4.0, 5.0), _turns(3, 4.0, 5.0, offset=4.5)]
    assert packed_limit(short, 30.0, slots=10, max_seconds=60.0, min_billed=4.0) == PACK_FLOOR
    assert packed_limit(short, 30.0, slots=10, max_seconds=60.0, min_billed=8.0) == 16.0
    assert packed_limit(sides, duration, slots=0, max_seconds=60.0) == 60.0
    assert packed_limit([[], []], duration, slots=10, max_seconds=60.0) == 60.0


def test_packed_jobs_sized_to_the_cap_bill_the_same_and_come_in_waves(tmp_path_factory):
    """The bench's 5-minute call: packed to the cap's waves it bills as packed to 60 s, in at least two jobs a slot."""
    from dataclasses import replace

    from bench import media as bench_media
    from bench.packing import bill
    from shared.settings import load_settings

    call = bench_media.conversation(300.0, tmp_path_factory.mktemp("bench-cache"))
    sides = (call.caller_speech, call.callee_speech)
    settings = load_settings()
    waves = bill(call.seconds, sides, replace(settings, fal_max_concurrent_jobs=10), pack=True)
    whole = bill(call.seconds, sides, replace(settings, fal_max_concurrent_jobs=0), pack=True)
    assert waves.ratio <= 1.1 and abs(waves.billed - whole.billed) < 0.01 * whole.billed
    assert whole.jobs < 10 and 10 < waves.jobs <= 2 * 10
