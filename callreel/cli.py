"""The ``callreel`` command: render a recording, run the stack locally, inspect and retry calls."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from shared.keys import InvalidCallId
from shared.settings import VIDEO_LAYOUTS, SettingsError, get_settings

from .errors import CliError

CAPTION_MODES = ("burn", "track", "off")  # CAPTIONS' choices (shared/settings.py)

__all__ = ["main", "build_parser"]


def _embedded_settings():
    """The configured settings, with the broker forced in-process: this process runs the workers."""
    return dataclasses.replace(get_settings(), broker_url="memory://")


def _setup(settings=None) -> None:
    from shared.db import init_database
    from shared.logs import configure_logging
    from shared.migrations import run_migrations

    configure_logging(settings)
    init_database()
    run_migrations()


def cmd_operator_hash(args: argparse.Namespace) -> int:
    """A password's hash for OPERATORS; the password from the terminal (asked twice) or one line of stdin."""
    import getpass

    from shared.operators import NAME_RE, hash_password

    name = args.name.strip().lower()
    if not NAME_RE.match(name) or name == "token":
        raise CliError("an operator name is 1–32 of a-z 0-9 _ - and not 'token'")
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise CliError("use a password of 12 characters or more")
    print(f"{name}:{hash_password(password)}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import init_database
    from shared.logs import configure_logging
    from shared.migrations import run_migrations

    configure_logging()
    init_database()
    changes = run_migrations()
    print("\n".join(changes) if changes else "schema is up to date")
    return 0


def cmd_bucket(args: argparse.Namespace) -> int:
    from shared.logs import configure_logging
    from shared.storage import ADDED, PRESENT, LocalStorage, S3Storage, get_storage

    configure_logging()
    store = get_storage()
    if not isinstance(store, S3Storage):
        root = store.root if isinstance(store, LocalStorage) else store
        print(f"objects are kept in a local folder ({root}): no bucket to set up")
        return 0
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        store.ensure_bucket()
        outcome = store.ensure_abort_rule()
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"cannot set up bucket {store.bucket}: {exc}") from None
    if outcome == ADDED:
        print(f"bucket {store.bucket}: now aborts multipart uploads left unfinished for a day")
    elif outcome == PRESENT:
        print(f"bucket {store.bucket}: already aborts unfinished multipart uploads")
    else:
        print(
            f"bucket {store.bucket}: ready, but this S3 server does not keep an AbortIncompleteMultipartUpload rule; "
            "unfinished multipart uploads stay until it removes them itself (MinIO does after 24 h)"
        )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render

    own = {
        "video_layout": args.layout,
        "caller_name": args.caller_name,
        "callee_name": args.callee_name,
    }
    avatars = {"caller": args.caller_avatar, "callee": args.callee_avatar}
    transcript = Path(args.transcript) if args.transcript else None
    return render(
        Path(args.recording),
        Path(args.output),
        settings=_embedded_settings(),
        quiet=args.quiet,
        transcript=transcript,
        captions=args.captions,
        presentation={k: v for k, v in own.items() if v},
        avatars={side: Path(path) for side, path in avatars.items() if path},
    )


def cmd_gc(args: argparse.Namespace) -> int:
    from .gc import collect

    _setup()
    done = collect(outputs=args.outputs, dry_run=args.dry_run)
    if not done.files:
        print("nothing to remove: no completed call keeps objects it no longer needs")
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(done.files)} file(s), {done.size / 1_000_000:.1f} MB, of {done.calls} completed call(s)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .views import call_summary

    _setup()
    print(json.dumps(call_summary(args.call_id), indent=2, default=str))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .views import list_calls

    _setup()
    rows = list_calls(status=args.status, limit=args.limit)
    if not rows:
        print("no calls")
        return 0
    print(f"{'call id':36} {'status':10} {'stage':11} {'created (UTC)':19}  error")
    for row in rows:
        created = row.created_at.strftime("%Y-%m-%d %H:%M:%S") if row.created_at else ""
        error = (row.video_error_message or "")[:60]
        print(f"{row.id:36} {row.video_status or '':10} {row.stage or '':11} {created:19}  {error}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from shared.keys import validate_call_id
    from shared.retry import RetryError, retry_call

    call_id = validate_call_id(args.call_id)
    settings = get_settings()
    if not settings.in_process_broker:
        _setup()
        from shared.broker import setup_broker

        setup_broker()
        try:
            stage = retry_call(call_id)
        except RetryError as exc:
            raise CliError(str(exc)) from exc
        print(f"{call_id}: re-enqueued from {stage}; the workers will finish it")
        return 0
    # In-process broker: nobody else would ever read the message, so run it here.
    from .embedded import running_pipeline
    from .render import wait_for

    with running_pipeline(settings):
        try:
            stage = retry_call(call_id)
        except RetryError as exc:
            raise CliError(str(exc)) from exc
        print(f"{call_id}: retrying from {stage}")
        call = wait_for(call_id, quiet=args.quiet)
    print(f"{call_id}: {call.video_status}" + (f" ({call.video_error_message})" if call.video_error_message else ""))
    return 0 if call.video_status == "completed" else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    import signal
    import threading

    from services.ingest import expire_pairs
    from shared.broker import setup_broker
    from shared.db import connection
    from shared.sweeper import check_deadline, check_queues, sweep

    settings = get_settings()
    if settings.in_process_broker:
        raise CliError("the sweeper re-enqueues calls for the workers on RabbitMQ: set BROKER_URL (amqp://…)")
    _setup()
    setup_broker()
    for warning in (check_deadline(settings), check_queues(settings)):
        if warning:
            print(f"callreel: warning: {warning}", file=sys.stderr)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        try:
            with connection():
                swept = sweep(settings)
                settled = expire_pairs(settings)  # ElevenLabs webhooks whose pair never came
        except Exception as exc:  # the database is away: say so, try again next pass
            if not args.every:
                raise CliError(f"sweep failed: {exc}") from exc
            print(f"callreel: sweep failed, trying again in {args.every:g}s: {exc}", file=sys.stderr, flush=True)
            swept, settled = [], []
        for line in [*swept, *settled]:
            print(line, flush=True)
        actions = [s.action for s in swept]
        for stage in sorted({s.stage for s in swept if s.action == "alerted"}):
            print(f"callreel: alert: no consumer on the {stage} queue: start the {stage} workers", file=sys.stderr, flush=True)
        print(
            f"sweep: {len(swept)} stuck call(s): {actions.count('retried')} re-enqueued, {actions.count('failed')} failed, "
            f"{actions.count('waiting')} waiting in a queue, {actions.count('alerted')} waiting for a worker",
            flush=True,
        )
        if not args.every:
            break
        stop.wait(args.every)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(port=args.port)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callreel")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def cmd_submit(args: argparse.Namespace) -> int:
    from .submit import submit, wait

    fields = {
        "caller_name": args.caller_name,
        "callee_name": args.callee_name,
        "video_layout": args.layout,
        "captions": args.captions,
        "agent_channel": args.agent_channel,
    }
    avatars = {side: Path(image) for side, image in (("caller", args.caller_avatar), ("callee", args.callee_avatar)) if image}
    transcript = Path(args.transcript) if args.transcript else None
    settings = get_settings()
    base_url = args.url or settings.public_base_url or f"http://localhost:{settings.port}"
    auth = Path(args.recording_auth_file).read_text(encoding="utf-8").strip() if args.recording_auth_file else None
    answer = submit(
        args.recording, base_url=base_url, token=settings.api_token, external_id=args.external_id, transcript=transcript,
        fields=fields, avatars=avatars, recording_auth=auth,
    )
    said = "submitted" if answer.get("created") else "already submitted"
    print(f"{answer['id']} {said} ({answer.get('status')}): {answer.get('status_url')}")
    if not args.wait:
        return 0
    # Polled where this command reached the service (status_url names its public address, which may be another).
    view = wait(f"{base_url.rstrip('/')}/calls/{answer['id']}", token=settings.api_token, every=args.poll)
    print(json.dumps({k: view.get(k) for k in ("id", "status", "error", "video_url")}, indent=2))
    return 1 if view.get("status") == "failed" else 0


def _name(value: str) -> str:
    from shared.presentation import name_problem

    problem = name_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"the name {problem}")
    return value.strip()


def _command(sub, name: str, description: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does in one line and shows it at work."""
    return sub.add_parser(
        name,
        help=description,
        description=description[0].upper() + description[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callreel", description="Turn dual-channel call recordings into split-screen videos.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub, "render", "render one recording into a split-screen video, all in this process", "callreel render call.mp3 -o call.mp4"
    )
    p.add_argument("recording", help="a dual-channel recording (MP3 or WAV): left = caller, right = callee")
    p.add_argument("-o", "--output", required=True, help="where to write the MP4")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--layout", choices=VIDEO_LAYOUTS, help="frame layout of this video (default: VIDEO_LAYOUT; docs/layouts.md)")
    p.add_argument(
        "--transcript",
        metavar="FILE",
        help="the call's words (JSON turns, WebVTT with voice tags or SRT): captions, and OUT.vtt next to OUT.mp4",
    )
    p.add_argument("--captions", choices=CAPTION_MODES, help="how this video shows the transcript: burn, track or off (default: CAPTIONS)")
    p.add_argument("--caller-name", type=_name, metavar="NAME", help="the caller's label in this video (default: CALLER_LABEL)")
    p.add_argument("--callee-name", type=_name, metavar="NAME", help="the callee's label in this video (default: CALLEE_LABEL)")
    p.add_argument(
        "--caller-avatar", metavar="IMG", help="the caller's avatar image: PNG, JPEG or WebP, at least 256 px (default: CALLER_AVATAR_URL)"
    )
    p.add_argument("--callee-avatar", metavar="IMG", help="the callee's avatar image (default: CALLEE_AVATAR_URL)")
    p.set_defaults(func=cmd_render)

    p = _command(
        sub,
        "submit",
        "submit a recording (a file or an https URL) to a running callreel service over its API (POST /calls)",
        "CALLREEL_API_TOKEN=… callreel submit call.wav --url https://callreel.example.com --transcript call.vtt --wait",
    )
    p.add_argument("recording", help="a stereo recording (MP3, WAV, FLAC, Ogg, M4A) to upload, or an https:// URL the service fetches")
    p.add_argument("--url", help="the service's address (default: PUBLIC_BASE_URL, else http://localhost:PORT)")
    p.add_argument(
        "--external-id", metavar="ID", help="your id for the call; the same id again returns the same call (default: from the file or URL)"
    )
    p.add_argument("--recording-auth-file", metavar="FILE", help="a file holding the URL's Authorization header value (Bearer …/Basic …)")
    p.add_argument("--transcript", metavar="FILE", help="the call's words: JSON turns, WebVTT with voice tags or SRT")
    p.add_argument("--caller-name", "--name-caller", dest="caller_name", type=_name, metavar="NAME", help="the caller's (AI agent's) label")
    p.add_argument("--callee-name", "--name-callee", dest="callee_name", type=_name, metavar="NAME", help="the callee's label")
    p.add_argument("--layout", choices=VIDEO_LAYOUTS, help="frame layout (default: the service's VIDEO_LAYOUT)")
    p.add_argument("--captions", choices=CAPTION_MODES, help="burn, track or off (default: the service's CAPTIONS)")
    p.add_argument("--agent-channel", choices=("left", "right"), help="the AI agent's channel (default: the service's CALLER_CHANNEL)")
    p.add_argument("--caller-avatar", metavar="IMG", help="the caller's avatar image (PNG, JPEG or WebP; with a file upload)")
    p.add_argument("--callee-avatar", metavar="IMG", help="the callee's avatar image")
    p.add_argument("--wait", action="store_true", help="poll the call until it ends; exit 1 if it failed")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="seconds between polls with --wait (default: 2)")
    p.set_defaults(func=cmd_submit)

    p = _command(sub, "serve", "the webhook app and all four workers in one process (local development)", "callreel serve --port 8000")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: PORT)")
    p.set_defaults(func=cmd_serve)

    p = _command(
        sub,
        "status",
        "show one call as JSON: status, stage, timings, segments, errors",
        "callreel status CA0123456789abcdef0123456789abcdef",
    )
    p.add_argument("call_id")
    p.set_defaults(func=cmd_status)

    p = _command(sub, "list", "list calls, newest first", "callreel list --status failed --limit 20")
    p.add_argument("--status", choices=("pending", "generating", "completed", "partial", "failed"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_list)

    p = _command(
        sub, "retry", "re-run a failed or partial call from its first unfinished stage", "callreel retry CA0123456789abcdef0123456789abcdef"
    )
    p.add_argument("call_id")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_retry)

    p = _command(
        sub,
        "sweep",
        "re-enqueue calls stuck in a stage past STAGE_DEADLINE, or fail them (see shared/sweeper.py)",
        "callreel sweep --every 60",
    )
    p.add_argument("--every", type=float, default=0, metavar="SECONDS", help="keep sweeping, every SECONDS (default: once)")
    p.set_defaults(func=cmd_sweep)

    p = _command(
        sub,
        "gc",
        "delete from embedded mode's object folder what completed calls no longer need (failed and partial calls keep theirs)",
        "callreel gc --dry-run",
    )
    p.add_argument("--outputs", action="store_true", help="the final videos, posters, transcripts and captions too")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    p.set_defaults(func=cmd_gc)

    p = _command(
        sub,
        "operator-hash",
        "print an OPERATORS entry (name:scrypt hash) for a console operator; the password is read from the terminal or stdin",
        "callreel operator-hash alice",
    )
    p.add_argument("name", help="the operator's name, as the call history shows it")
    p.set_defaults(func=cmd_operator_hash)

    _command(sub, "migrate", "create or update the database schema (idempotent)", "callreel migrate").set_defaults(func=cmd_migrate)
    _command(
        sub,
        "bucket",
        "create S3_BUCKET if missing and have it abort multipart uploads unfinished after a day (idempotent)",
        "S3_BUCKET=my-videos callreel bucket",
    ).set_defaults(func=cmd_bucket)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (CliError, InvalidCallId) as exc:
        print(f"callreel: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A full disk, a folder made read-only, a file gone: the system's words, one line, no traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"callreel: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("callreel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
