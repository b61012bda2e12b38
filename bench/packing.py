"""fal-billed seconds against speech, from the planner alone (issue #26): no services, no fal.

    .venv/bin/python bench/packing.py [--minutes 5 10]   # needs FFmpeg and espeak-ng (bench/media.py)

Each call is the benchmark's two-voice call (bench/media.py: turns of 1.3–4.8 s,
the other side's answer between), whose speech intervals are known by
construction. Each side is planned as the audio stage plans it
(:func:`services.audio.job_limit` and :func:`shared.segments.plan_jobs` with the
environment's settings, the defaults unless set: FAL_MODEL, SEGMENT_MAX_SECONDS, SPEECH_PADDING,
FAL_MAX_CONCURRENT_JOBS), packed
and contiguous (SPEECH_PACKING off), and billed as fal
bills: every job ``max(its audio, the model's min_seconds)``. Speech is the
two sides' intervals as built, unpadded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import media  # noqa: E402
from services.audio import job_limit  # noqa: E402
from shared.fal_models import model_for  # noqa: E402
from shared.segments import Interval, plan_jobs  # noqa: E402
from shared.settings import Settings, load_settings  # noqa: E402

__all__ = ["Bill", "bill", "main"]


@dataclass(frozen=True)
class Bill:
    speech: float  # seconds either side speaks, added
    billed: float  # seconds fal bills for the jobs
    jobs: int

    @property
    def ratio(self) -> float:
        return self.billed / self.speech if self.speech else 0.0


def bill(duration: float, sides: Sequence[Sequence[Interval]], settings: Settings, *, pack: bool) -> Bill:
    """What fal would bill for the sides' jobs, planned as the audio stage plans them with ``settings``."""
    model = model_for(settings.fal_model)
    speech = billed = 0.0
    jobs = 0
    settings = replace(settings, generation_mode="speech", speech_packing=pack)
    limit = job_limit(settings, duration, [list(intervals) for intervals in sides])
    for intervals in sides:
        planned = plan_jobs(
            duration,
            list(intervals),
            mode="speech",
            max_seconds=limit,
            padding=settings.speech_padding,
            min_billed=model.min_seconds,
            pack=pack,
        )
        speech += sum(end - start for start, end in intervals)
        billed += sum(max(job.seconds, model.min_seconds) for job in planned)
        jobs += len(planned)
    return Bill(round(speech, 2), round(billed, 2), jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".callreel" / "bench-cache")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    print(f"model {settings.fal_model}, SEGMENT_MAX_SECONDS {settings.segment_max_seconds:g}, SPEECH_PADDING {settings.speech_padding:g}")
    print("| call | speech (s) | packed: billed (s), jobs, ÷ speech | contiguous: billed (s), jobs, ÷ speech |")
    print("|---|---|---|---|")
    for minutes in args.minutes:
        call = media.conversation(minutes * 60, args.cache)
        sides = (call.caller_speech, call.callee_speech)
        packed, contiguous = (bill(call.seconds, sides, settings, pack=pack) for pack in (True, False))
        print(
            f"| {minutes:g} min | {packed.speech:.1f} | {packed.billed:.1f}, {packed.jobs}, **{packed.ratio:.3f}** "
            f"| {contiguous.billed:.1f}, {contiguous.jobs}, {contiguous.ratio:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
