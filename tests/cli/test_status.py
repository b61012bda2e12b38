"""``callreel status`` and ``callreel list`` read calls through ``shared.calls``, as the operator page does."""

import datetime as dt
import json

from callreel.cli import main
from shared.models import Segment, Stage, VideoStatus
from tests.support.calls import make_call

T0 = dt.datetime(2026, 11, 26, 3, 0, 0)
CALL = "CA" + "5" * 32


def test_status_shows_the_timeline_and_segments(sqlite_db, capsys):
    make_call(
        CALL, video_status=VideoStatus.PARTIAL, stage=Stage.DONE, created_at=T0,
        ingest_started_at=T0, ingest_finished_at=T0 + dt.timedelta(seconds=4), ingest_attempts=1,
    )
    Segment.create(call_id=CALL, side="callee", index=0, start=0, end=4.5, state="failed", fal_request_id="req-9", attempts=3)

    assert main(["status", CALL]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "partial"
    assert shown["stages"]["ingest"]["seconds"] == 4.0 and shown["stages"]["ingest"]["state"] == "done"
    assert shown["stages"]["audio"]["state"] == "skipped"
    assert [(s["side"], s["fal_request_id"], s["attempts"]) for s in shown["segments"]] == [("callee", "req-9", 3)]


def test_list_is_newest_first_and_filtered(sqlite_db, capsys):
    make_call("CA" + "1" * 32, video_status=VideoStatus.FAILED, created_at=T0)
    make_call("CA" + "2" * 32, video_status=VideoStatus.COMPLETED, created_at=T0 + dt.timedelta(seconds=1))
    make_call("CA" + "3" * 32, video_status=VideoStatus.FAILED, created_at=T0 + dt.timedelta(seconds=2))

    assert main(["list", "--status", "failed"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["CA" + "3" * 32, "CA" + "1" * 32]


def test_status_of_an_unknown_call(sqlite_db, capsys):
    assert main(["status", "CA" + "0" * 32]) == 1
    assert "no call" in capsys.readouterr().err
