"""Last fal result → finished video for a long call, with 1 and 2 compositor processes (issue #26).

    .venv/bin/python -m bench.chunked_compose [--seconds 300] [--chunk 60] [--arrive 12]

Runs the real services (gunicorn, one Dramatiq process per service, RabbitMQ,
PostgreSQL, moto S3, the fake fal and Twilio: tests/e2e/harness.py) with the
fake fal answering every job at once with a 512×512 talking-head-sized video,
and sends one call of ``--seconds`` three times: compositor in one pass
(COMPOSE_CHUNK_SECONDS=0), chunked with one compositor process, chunked with two
(each of one thread). What is printed is the time from the last segment video
stored (the last fal result) to the call's ``compositor_finished_at``, and the
SSIM at the chunk joins of the last run (shared/ffmpeg/ssim.py), above the
captions' band (a cue may begin on a join's frame: content, not a seam). Figures are
printed, never asserted.

``--arrive S``: the fal results come back one every S seconds instead of all at
once (the fake's simulator runs one job at a time, each S seconds), and the
call is sent twice with one compositor process of one thread: chunked as
before (COMPOSE_EARLY_CHUNKS=false: every chunk waits for the fan-in) and with
early chunks (each rendered as soon as its segments are stored). Printed: the
same last-result-to-video time, and how many chunks were done at the fan-in.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--chunk", type=float, default=60.0)
    parser.add_argument("--arrive", type=float, default=0.0, help="seconds between two fal results (0: all at once)")
    args = parser.parse_args()

    from shared import keys
    from shared.compose_chunks import ComposeChunk  # noqa: F401  (the table the run uses)
    from shared.db import init_database
    from shared.ffmpeg import seam_report
    from shared.models import Call, Segment
    from tests.e2e.harness import Pipeline, Worker
    from tests.support import services
    from tests.support.fake_fal import Simulation
    from tests.support.media import color_video

    pg_url, broker_url = services.create_pg_database(), services.create_vhost()
    s3 = services.S3Server().start()
    root = Path(tempfile.mkdtemp(prefix="callreel-bench-chunks-"))
    overrides = {
        "PANEL_WIDTH": "640", "PANEL_HEIGHT": "480", "VIDEO_FPS": "25", "RECORDING_MAX_SECONDS": "3600",
        "RECORDING_MAX_BYTES": str(50_000_000), "STAGE_DEADLINE": "1800", "FAL_JOB_TIMEOUT": "600",
        "GENERATION_MODE": "full", "SEGMENT_MAX_SECONDS": "60", "COMPOSE_TIMEOUT": "1800",
    }
    rows = []
    try:
        with Pipeline(root, pg_url=pg_url, broker_url=broker_url, s3_server=s3, **overrides) as pipeline:
            init_database(pg_url, force=True)
            assert pipeline.fal is not None
            pipeline.fal.video = color_video(root / "fal-60s.mp4", "navy", size="512x512", duration=60.0).read_bytes()
            runs: tuple[tuple[str, float, int, bool], ...] = (
                ("one pass", 0.0, 1, False), ("chunked, 1 process", args.chunk, 1, False), ("chunked, 2 processes", args.chunk, 2, False),
            )
            if args.arrive:
                # One job at a time, each `arrive` s of fal compute: a 60 s segment at arrive/60 s a second of video.
                pipeline.fal.simulate(Simulation(queue_seconds=0.0, speed=args.arrive / args.chunk, concurrency=1))
                runs = (("chunked, today", args.chunk, 1, False), ("chunked, early chunks", args.chunk, 1, True))
            for label, chunk, processes, early in runs:
                settings = {"COMPOSE_CHUNK_SECONDS": str(chunk), "COMPOSE_EARLY_CHUNKS": str(early).lower()}
                pipeline.restart("generation", **settings)  # it offers the chunks (COMPOSE_EARLY_CHUNKS)
                old = pipeline.workers["compositor"]
                old.stop()
                env = pipeline.env("compositor", **settings)
                pipeline.workers["compositor"] = Worker("compositor", env, old.log_path, threads=1, processes=processes).start()
                pipeline.wait_ready()
                sent = pipeline.send_call(pipeline.recording(float(args.seconds)), RecordingDuration=str(args.seconds))
                call = pipeline.wait_ended_one(sent.call_id, timeout=3600)
                last = max(s.finished_at for s in Segment.select().where(Segment.call_id == sent.call_id))
                call = Call.get_by_id(sent.call_id)
                log = pipeline.workers["compositor"].log()
                done = re.findall(r"rendering in (\d+) chunks of about [\d.]+ s \((\d+) rendered early\)", log)
                status = call.video_status
                if chunk and done:
                    status += f", {done[-1][1]} of {done[-1][0]} chunks done at the fan-in"
                rows.append((label, (call.compositor_finished_at - last).total_seconds(), status))
                print(f"{label:24s} last fal result → video {rows[-1][1]:6.1f} s  ({status})", flush=True)
            video = root / "last.mp4"
            video.write_bytes(pipeline.object_bytes(keys.video_key(sent.call_id)))
            joins = [args.chunk * n for n in range(1, int(args.seconds // args.chunk))]
            # Above the captions' band: a cue that begins on a join's frame is the call's content, not a seam.
            region = (0, 0, 960, 320)
            print("chunk joins of the last run (SSIM of the picture above the captions):")
            for seam in seam_report(video, joins, fps=25, region=region):
                print(f"join at {seam.at:6.1f} s: SSIM across {seam.across:.4f}, least around {seam.around:.4f}, "
                      f"invisible {seam.invisible}")
    finally:
        s3.stop()
        services.delete_vhost(broker_url)
        services.drop_pg_database(pg_url)
    print(f"\n{args.seconds} s call, COMPOSE_CHUNK_SECONDS={args.chunk:g}:")
    for label, seconds, status in rows:
        print(f"  {label:24s} {seconds:6.1f} s  {status}")


if __name__ == "__main__":
    main()
