"""Every setting callreel reads, in one place.

Each field of :class:`Settings` names the environment variable it comes from,
its default and what it is for. ``load_settings`` reads them all at once and
reports every missing or invalid variable in one :class:`SettingsError`, so an
operator fixes a deployment in one pass instead of one crash at a time.

The defaults run the whole pipeline on one machine: a SQLite file, a local
folder as the object store, an in-process broker and local panels instead of
fal.ai. docs/configuration.md's table lists the same variables; a test keeps
the two in step.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tempfile
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError", "VIDEO_LAYOUTS", "get_settings", "load_settings", "reload_settings"]

# VIDEO_LAYOUT's values (services/compositor/layouts.py places each; `callreel render --layout` offers them).
VIDEO_LAYOUTS = ("side-by-side", "landscape", "square", "vertical")


class SettingsError(Exception):
    """One or more environment variables are missing or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"callreel configuration is invalid ({len(problems)} problem(s)):\n{lines}")


def env(
    name: str,
    default: Any,
    help: str,
    *,
    group: str = "core",
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare a setting: the variable it is read from and how to check it."""
    meta = {"env": name, "help": help, "group": group, "choices": choices, "minimum": minimum, "secret": secret}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    # -- core ---------------------------------------------------------------
    data_dir: Path = env("CALLREEL_DATA_DIR", Path(".callreel"), "Folder for embedded-mode state (SQLite file, local object store).")
    database_url: str = env("DATABASE_URL", "", "Database URL (`postgresql://…` or `sqlite:///…`). Empty: SQLite file in CALLREEL_DATA_DIR.")
    db_lock_timeout: float = env("DB_LOCK_TIMEOUT", 4.0, "Seconds a statement may wait for a lock on PostgreSQL before it fails (a locked table answers the webhook 503 within Twilio's 15 s, and /healthz says so). 0: wait for ever.", minimum=0)
    db_statement_timeout: float = env("DB_STATEMENT_TIMEOUT", 10.0, "Seconds one PostgreSQL statement may run before it is cancelled (a stalled database answers 503, not a hung request). 0: no limit.", minimum=0)
    broker_url: str = env("BROKER_URL", "memory://", "RabbitMQ URL (`amqp://user:pass@host:5672/vhost`). `memory://`: in-process broker.")
    broker_heartbeat: int = env("BROKER_HEARTBEAT", 30, "AMQP heartbeat in seconds, so dead connections are noticed.", minimum=0)
    broker_confirm_delivery: bool = env("BROKER_CONFIRM_DELIVERY", True, "Wait for RabbitMQ publisher confirms on every enqueue.")
    log_level: str = env("LOG_LEVEL", "INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = env("LOG_FORMAT", "text", "`text` for people, `json` for one JSON object per line.", choices=("text", "json"))
    tmp_dir: Path = env("TMP_DIR", Path(tempfile.gettempdir()), "Where workers make their per-call temp folders.")
    stage_deadline: int = env("STAGE_DEADLINE", 3600, "Seconds a call may sit in one stage before the sweeper acts.", minimum=60)
    sweep_max_retries: int = env("SWEEP_MAX_RETRIES", 2, "Times the sweeper re-enqueues a stuck call before failing it.", minimum=0)
    # -- storage ------------------------------------------------------------
    s3_bucket: str = env("S3_BUCKET", "", "S3 bucket. Empty: a local folder (LOCAL_STORAGE_DIR) is the object store.", group="storage")
    s3_endpoint_url: str = env("S3_ENDPOINT_URL", "", "S3-compatible endpoint (MinIO…). Empty: AWS.", group="storage")
    aws_region: str = env("AWS_REGION", "us-east-1", "AWS region of the bucket.", group="storage")
    aws_access_key_id: str = env("AWS_ACCESS_KEY_ID", "", "AWS access key. Empty: boto3's default credential chain.", group="storage", secret=True)
    aws_secret_access_key: str = env("AWS_SECRET_ACCESS_KEY", "", "AWS secret key.", group="storage", secret=True)
    local_storage_dir: Path = env("LOCAL_STORAGE_DIR", Path(""), "Local object store folder. Empty: CALLREEL_DATA_DIR/objects.", group="storage")
    presigned_url_expiry: int = env("PRESIGNED_URL_EXPIRY", 3600, "Lifetime in seconds of presigned GET URLs.", group="storage", minimum=1)
    s3_part_size_mb: int = env("S3_PART_SIZE_MB", 8, "Multipart upload part size in MiB (memory per upload stays near this).", group="storage", minimum=5)
    s3_max_attempts: int = env("S3_MAX_ATTEMPTS", 5, "Attempts per S3 request on transient errors.", group="storage", minimum=1)
    storage_outage_tolerance: int = env("STORAGE_OUTAGE_TOLERANCE", 300, "Seconds a stage keeps retrying (with backoff) while the object store is unreachable or TMP_DIR is full, before the call fails.", group="storage", minimum=1)
    # -- ingest -------------------------------------------------------------
    twilio_account_sid: str = env("TWILIO_ACCOUNT_SID", "", "Twilio Account SID; webhooks from other accounts are refused.", group="ingest")
    twilio_auth_token: str = env("TWILIO_AUTH_TOKEN", "", "Twilio Auth Token: webhook signatures and recording downloads.", group="ingest", secret=True)
    twilio_validate_signature: bool = env("TWILIO_VALIDATE_SIGNATURE", True, "Check X-Twilio-Signature. Turning it off is logged loudly.", group="ingest")
    twilio_webhook_shared_key: str = env("TWILIO_WEBHOOK_SHARED_KEY", "", "Secret of a Twilio Webhooks SharedKey, for webhooks signed with one. Empty: Auth Token signatures only.", group="ingest", secret=True)
    public_base_url: str = env("PUBLIC_BASE_URL", "", "Public https URL of the ingest service as Twilio calls it.", group="ingest")
    twilio_recording_hosts: tuple[str, ...] = env("TWILIO_RECORDING_HOSTS", ("api.twilio.com",), "Comma list of hosts a RecordingUrl may point at (https only).", group="ingest")
    recording_url_hosts: tuple[str, ...] = env("RECORDING_URL_HOSTS", (), "Comma list of hosts a submitted recording URL (`POST /calls`, the voice-agent platforms' webhooks) may be fetched from, https only: `host`, `host:port`, `*.example.com` (any subdomain) or `*` (any host). A host matched by a wildcard must resolve to public addresses only; an exact entry is trusted as it is. Empty: recording URLs are refused (uploads still work). See docs/ingest.md.", group="ingest")
    twilio_recording_format: str = env("TWILIO_RECORDING_FORMAT", "mp3", "Format asked of Twilio when downloading.", group="ingest", choices=("mp3", "wav"))
    webhook_max_age: int = env("WEBHOOK_MAX_AGE", 86400, "Seconds after its RecordingStartTime a recording status callback is still accepted; older ones (replays) get 400.", group="ingest", minimum=60)
    twilio_404_window: int = env("TWILIO_404_WINDOW", 120, "Seconds to keep retrying a 404 right after the callback.", group="ingest", minimum=0)
    twilio_delete_recording: bool = env("TWILIO_DELETE_RECORDING", False, "Delete the recording at Twilio once stored.", group="ingest")
    download_timeout: int = env("DOWNLOAD_TIMEOUT", 30, "Connect/read timeout in seconds for recording downloads.", group="ingest", minimum=1)
    recording_max_bytes: int = env("RECORDING_MAX_BYTES", 500_000_000, "Largest recording accepted, in bytes.", group="ingest", minimum=1)
    api_token: str = env("CALLREEL_API_TOKEN", "", "Bearer token for the status API and operator page; 32 characters or more. Empty: both are off.", group="ingest", secret=True)
    share_link_ttl: int = env("SHARE_LINK_TTL", 604800, "Seconds a public share link (`POST /calls/{callId}/share`) stays valid; the links are signed with a key derived from CALLREEL_API_TOKEN. See docs/console.md.", group="ingest", minimum=60)
    auth_max_failures: int = env("AUTH_MAX_FAILURES", 10, "Wrong API tokens one client address may send per AUTH_FAILURE_WINDOW before it gets 429, counted apart for the API and the login form. The right token is never refused.", group="ingest", minimum=1)
    auth_failure_window: int = env("AUTH_FAILURE_WINDOW", 300, "Seconds over which wrong API tokens are counted (in the database, across workers and restarts).", group="ingest", minimum=1)
    trusted_proxy_hops: int = env("TRUSTED_PROXY_HOPS", 0, "Proxies in front of ingest that append to X-Forwarded-For (Railway: 1). The client address is the entry this many from the right; 0: the peer's address, the header ignored.", group="ingest", minimum=0)
    operators: str = env("OPERATORS", "", "Named operator accounts for the console, `name:hash,name:hash` (hashes from `callreel operator-hash`), so its history says who did what; CALLREEL_API_TOKEN keeps working as operator `token`. See docs/console.md.", group="ingest", secret=True)
    operator_session_max_age: int = env("OPERATOR_SESSION_MAX_AGE", 43200, "Seconds an operator page login lasts.", group="ingest", minimum=60)
    port: int = env("PORT", 8000, "Port the ingest service listens on.", group="ingest", minimum=1)
    gunicorn_workers: int = env("GUNICORN_WORKERS", 2, "gunicorn worker processes for ingest.", group="ingest", minimum=1)
    gunicorn_threads: int = env("GUNICORN_THREADS", 4, "Threads per gunicorn worker.", group="ingest", minimum=1)
    # -- voice-agent platforms (#27, services/ingest/platforms/; docs/platforms.md) --------
    vapi_webhook_secret: str = env("VAPI_WEBHOOK_SECRET", "", "Secret of the Vapi credential on the Server URL (`X-Vapi-Secret`, `Authorization: Bearer` or HMAC); `POST /webhooks/vapi` checks it. Empty: the Vapi webhook is off (404).", group="ingest", secret=True)
    vapi_api_key: str = env("VAPI_API_KEY", "", "Vapi private API key: recordings are fetched from Vapi's authenticated `/call/{id}/stereo-recording`. Empty: the URL in the end-of-call report is fetched as it is.", group="ingest", secret=True)
    vapi_recording_hosts: tuple[str, ...] = env("VAPI_RECORDING_HOSTS", ("storage.vapi.ai", "api.vapi.ai"), "Hosts a Vapi recording URL may point at (https only; allowed besides RECORDING_URL_HOSTS). Add your own bucket's host if Vapi uploads there.", group="ingest")
    vapi_agent_channel: str = env("VAPI_AGENT_CHANNEL", "left", "Channel of Vapi's stereo recording that holds the assistant (Vapi does not document it: check one call, docs/platforms.md).", group="ingest", choices=("left", "right"))
    retell_api_key: str = env("RETELL_API_KEY", "", "The Retell API key with the webhook badge: `POST /webhooks/retell` checks `x-retell-signature` with it. Empty: the Retell webhook is off (404).", group="ingest", secret=True)
    retell_recording_hosts: tuple[str, ...] = env("RETELL_RECORDING_HOSTS", ("dxc03zgurdly9.cloudfront.net",), "Hosts a Retell recording URL may point at (https only; allowed besides RECORDING_URL_HOSTS): Retell's recording CDN.", group="ingest")
    retell_agent_channel: str = env("RETELL_AGENT_CHANNEL", "left", "Channel of Retell's `recording_multi_channel_url` that holds the agent (Retell does not document it: check one call, docs/platforms.md).", group="ingest", choices=("left", "right"))
    elevenlabs_webhook_secret: str = env("ELEVENLABS_WEBHOOK_SECRET", "", "Shared secret of the ElevenLabs post-call webhook: `POST /webhooks/elevenlabs` checks `ElevenLabs-Signature` with it. Empty: the ElevenLabs webhook is off (404).", group="ingest", secret=True)
    elevenlabs_agent_channel: str = env("ELEVENLABS_AGENT_CHANNEL", "left", "Channel of an ElevenLabs `post_call_audio` recording that holds the agent, should it be stereo (docs/platforms.md).", group="ingest", choices=("left", "right"))
    elevenlabs_pair_timeout: int = env("ELEVENLABS_PAIR_TIMEOUT", 600, "Seconds an ElevenLabs post-call webhook waits for its pair (the audio for the transcript, or the other way round) before `callreel sweep` settles it: an audio alone becomes a call (which fails if mono), a transcript alone is dropped (docs/platforms.md).", group="ingest", minimum=10)
    # -- audio --------------------------------------------------------------
    caller_channel: str = env("CALLER_CHANNEL", "left", "Which channel of the recording is the caller (the AI voice).", group="audio", choices=("left", "right"))
    recording_max_seconds: int = env("RECORDING_MAX_SECONDS", 7200, "Longest recording accepted, in seconds.", group="audio", minimum=1)
    recording_min_seconds: float = env("RECORDING_MIN_SECONDS", 1.0, "Shortest recording accepted, in seconds of audio that decode.", group="audio", minimum=0.01)
    max_call_seconds: int = env("MAX_CALL_SECONDS", 3600, "Longest call sent on to generation, in seconds: a longer one fails at the audio stage, before anything reaches fal.ai (a cost guard; RECORDING_MAX_SECONDS is the input limit). 0: no limit.", group="audio", minimum=0)
    split_timeout: int = env("SPLIT_TIMEOUT", 600, "Seconds FFmpeg may take to split one recording.", group="audio", minimum=1)
    silence_threshold_db: float = env("SILENCE_THRESHOLD_DB", -35.0, "Level (dBFS) below which a side counts as silent.", group="audio")
    silence_min_duration: float = env("SILENCE_MIN_DURATION", 0.5, "Shortest pause (s) that splits two speech intervals.", group="audio", minimum=0.05)
    speech_min_duration: float = env("SPEECH_MIN_DURATION", 0.1, "Shortest sound (s) counted as speech; shorter bursts (clicks, line noise) are ignored.", group="audio", minimum=0)
    ffmpeg_binary: str = env("FFMPEG_BINARY", "ffmpeg", "FFmpeg executable.", group="audio")
    ffprobe_binary: str = env("FFPROBE_BINARY", "ffprobe", "ffprobe executable.", group="audio")
    # -- generation ---------------------------------------------------------
    fal_key: str = env("FAL_KEY", "", "fal.ai API key. Empty: nothing is sent to fal; local panels are rendered.", group="generation", secret=True)
    fal_model: str = env("FAL_MODEL", "fal-ai/stable-avatar", "fal.ai audio-to-video model endpoint.", group="generation")
    fal_queue_run_host: str = env("FAL_QUEUE_RUN_HOST", "queue.fal.run", "fal.ai queue host (read by fal-client).", group="generation")
    generation_mode: str = env("GENERATION_MODE", "full", "`full`: whole side; `speech`: only where the side speaks (cost saver).", group="generation", choices=("full", "speech"))
    segment_max_seconds: float = env("SEGMENT_MAX_SECONDS", 60.0, "Longest fal.ai segment, in seconds (cut in silences; never longer than the model's limit): a long side becomes several jobs run in parallel, so its video is ready sooner. 0: the model's limit (fewest jobs). See docs/generation.md.", group="generation", minimum=0)
    fal_poll_interval: float = env("FAL_POLL_INTERVAL", 7.0, "Seconds between status polls of a fal job (at most: a short avatar job is polled sooner, paced by its expected compute).", group="generation", minimum=0.1)
    fal_job_timeout: int = env("FAL_JOB_TIMEOUT", 600, "Least seconds a running fal job gets before it is cancelled and retried; a longer segment gets its length × the model's compute ratio × 2 (docs/generation.md).", group="generation", minimum=1)
    fal_max_retries: int = env("FAL_MAX_RETRIES", 2, "Retries per segment after a failed or timed-out fal job.", group="generation", minimum=0)
    speech_padding: float = env("SPEECH_PADDING", 0.15, "Seconds added around speech intervals in speech mode (each side of every stretch; with packing, every stretch in a job pays it).", group="generation", minimum=0)
    speech_packing: bool = env("SPEECH_PACKING", True, "Speech mode: several stretches of a side laid end to end in one fal.ai job (the silences between them left out; jobs sized to about two per FAL_MAX_CONCURRENT_JOBS slot, at most SEGMENT_MAX_SECONDS of audio), its video cut back into them by the compositor. Bills about the speech itself instead of ~1.2× on turn-taking calls (docs/fal-cost.md). false: one job of contiguous audio per stretch or group.", group="generation")
    fal_prompt: str = env("FAL_PROMPT", "A person talking on the phone, natural head motion, neutral background.", "Prompt for models that take one.", group="generation")
    caller_avatar_url: str = env("CALLER_AVATAR_URL", "", "Avatar image for the caller. Empty: the shipped default.", group="generation")
    callee_avatar_url: str = env("CALLEE_AVATAR_URL", "", "Avatar image for the callee. Empty: the shipped default.", group="generation")
    # fal.ai cap and cost guard (#26)
    fal_max_concurrent_jobs: int = env("FAL_MAX_CONCURRENT_JOBS", 10, "fal.ai video jobs running at once, across every generation worker on every machine (slots kept in the database, handed out round-robin by call; docs/fal-cost.md). Set it to the account's concurrency limit at fal.ai; 0: no cap.", group="generation", minimum=0)
    fal_daily_budget_usd: float = env("FAL_DAILY_BUDGET_USD", 0.0, "Estimated fal.ai spend per UTC day (list prices, shared/fal_models.py) beyond which a call's sides get local panels and the call ends partial; 0: no budget.", group="generation", minimum=0)
    stt_model: str = env("STT_MODEL", "fal-ai/wizper", "fal.ai speech-to-text model that transcribes a call when no transcript was supplied (with FAL_KEY): `fal-ai/wizper` or `fal-ai/whisper`.", group="generation")
    stt_language: str = env("STT_LANGUAGE", "en", "Language of the calls (ISO 639-1) for speech-to-text. Empty: the model detects it.", group="generation")
    # -- compositor ---------------------------------------------------------
    panel_width: int = env("PANEL_WIDTH", 640, "Width of the box each side's panel fits in (panels take the side videos' shape when they share one).", group="compositor", minimum=16)
    panel_height: int = env("PANEL_HEIGHT", 480, "Height of the box each side's panel fits in.", group="compositor", minimum=16)
    video_layout: str = env("VIDEO_LAYOUT", "side-by-side", "Frame layout: `side-by-side` (two PANEL_WIDTH×PANEL_HEIGHT panels), `landscape` (16:9), `square` (1080×1080) or `vertical` (1080×1920, caller on top; Shorts/Reels/TikTok). See docs/layouts.md.", group="compositor", choices=VIDEO_LAYOUTS)
    video_resolution: str = env("VIDEO_RESOLUTION", "720p", "Frame size of the `landscape` layout (1280×720 or 1920×1080); the other layouts have one size each.", group="compositor", choices=("720p", "1080p"))
    video_fps: int = env("VIDEO_FPS", 25, "Frame rate of the final video.", group="compositor", minimum=1)
    caller_label: str = env("CALLER_LABEL", "AI agent", "Label drawn on the caller's panel.", group="compositor")
    callee_label: str = env("CALLEE_LABEL", "Customer", "Label drawn on the callee's panel.", group="compositor")
    label_font: str = env("LABEL_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "Font file for the labels. Missing: fontconfig's sans, else no labels.", group="compositor")
    video_preset: str = env("VIDEO_PRESET", "superfast", "libx264 preset of the final video.", group="compositor")
    video_crf: int = env("VIDEO_CRF", 21, 'libx264 CRF of the final video (0-51, lower is better). 21: the picture quality of the plan for the least CPU (docs/benchmarks.md, section "Compositor defaults").', group="compositor", minimum=0)
    video_x264_params: str = env("VIDEO_X264_PARAMS", "mbtree=1:rc-lookahead=10:weightp=0", "x264 options applied over the preset (`key=value:…`). Empty: the preset alone.", group="compositor")
    audio_mix: str = env("AUDIO_MIX", "centered", "`centered`: both voices in both ears, each panned toward its panel (AUDIO_PAN) and normalised to AUDIO_LOUDNESS; `recording`: the recording's channels as they are (caller in one ear, callee in the other).", group="compositor", choices=("centered", "recording"))
    audio_pan: float = env("AUDIO_PAN", 0.3, "How far each voice leans toward its panel in the `centered` mix, 0 to 1: 0 both voices in the middle, 1 hard-panned as the recording.", group="compositor", minimum=0)
    audio_loudness: float = env("AUDIO_LOUDNESS", -16.0, "Integrated loudness (LUFS, EBU R128 as FFmpeg's loudnorm measures it) of the `centered` mix, -40 to -9.", group="compositor")
    audio_true_peak: float = env("AUDIO_TRUE_PEAK", -1.5, "Highest true peak (dBTP) of the `centered` mix's sound in the video, -9 to 0 (the mix is held 1 dB under it: room for the AAC encoder's overshoot).", group="compositor")
    captions: str = env("CAPTIONS", "burn", "Captions of the spoken words: `burn` (on the picture, plus a subtitle track), `track` (subtitle track only), `off`.", group="compositor", choices=("burn", "track", "off"))
    transcript_max_bytes: int = env("TRANSCRIPT_MAX_BYTES", 1_000_000, "Largest transcript file accepted, in bytes.", group="compositor", minimum=1)
    compose_timeout: int = env("COMPOSE_TIMEOUT", 1800, "Seconds FFmpeg may take to compose one call.", group="compositor", minimum=1)
    compose_chunk_seconds: float = env("COMPOSE_CHUNK_SECONDS", 60.0, "Length of the time chunks a long call's video is rendered in, by any compositor replica, then joined without re-encoding; calls shorter than 2.5 chunks render in one pass. 0: always one pass. See docs/compositor.md.", group="compositor", minimum=0)
    compose_early_chunks: bool = env("COMPOSE_EARLY_CHUNKS", True, "Render a chunked call's chunks while its generation still runs, each as soon as its segments (and words) are stored, so the compose after the last fal result only renders what is left and joins. Read by the generation service (which offers them) and the compositor. See docs/compositor.md.", group="compositor")
    video_status_callback_url: str = env("VIDEO_STATUS_CALLBACK_URL", "", "POST a signed JSON status here when a call finishes.", group="compositor")
    video_status_callback_secret: str = env("VIDEO_STATUS_CALLBACK_SECRET", "", "HMAC-SHA256 key for the status callback signature (32 bytes or more).", group="compositor", secret=True)
    # -- console: overview and alerts (#28) -----------------------------------
    alert_failure_rate: float = env("ALERT_FAILURE_RATE", 0.2, "Share of the calls ended in the last hour that may fail (0 to 1) before the console shows a banner; deploy/prometheus/alerts.yml has the same threshold.", group="ingest", minimum=0)
    # -- workers and deploy -------------------------------------------------
    worker_processes: int = env("WORKER_PROCESSES", 1, "Dramatiq worker processes per service.", group="deploy", minimum=1)
    worker_threads: int = env("WORKER_THREADS", 2, "Dramatiq threads per worker process.", group="deploy", minimum=1)
    metrics_port: int = env("METRICS_PORT", 9191, "Port of each service's private Prometheus /metrics endpoint (workers and ingest; 0: off).", group="deploy", minimum=0)
    metrics_host: str = env("METRICS_HOST", "127.0.0.1", "Address /metrics listens on. `::`: every address (the images and docker-compose set it, so Prometheus can scrape from another container).", group="deploy")
    rabbitmq_management_url: str = env("RABBITMQ_MANAGEMENT_URL", "", "RabbitMQ management API (`http://user:pass@host:15672`) for queue backlogs, and for the sweeper to tell a call waiting in a queue from a lost one.", group="deploy")

    # Derived values: one rule each, so every caller agrees on them.
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'callreel.db').resolve()}"

    @property
    def effective_local_storage_dir(self) -> Path:
        return self.local_storage_dir if str(self.local_storage_dir) not in ("", ".") else self.data_dir / "objects"

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_bucket)

    @property
    def uses_fal(self) -> bool:
        return bool(self.fal_key)

    @property
    def in_process_broker(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def longest_call_seconds(self) -> int:
        """The longest recording the audio stage lets through: RECORDING_MAX_SECONDS, or MAX_CALL_SECONDS if lower (and set)."""
        if self.max_call_seconds:
            return min(self.recording_max_seconds, self.max_call_seconds)
        return self.recording_max_seconds

    def recording_hosts_for(self, source: str) -> tuple[str, ...]:
        """Where a recording submitted by ``source`` may be fetched from (#27).

        RECORDING_URL_HOSTS for everyone; a voice-agent platform's own storage hosts
        only for that platform's webhook, so turning a platform's defaults on never
        opens POST /calls to hosts the deployment did not list.
        """
        own = {"vapi": self.vapi_recording_hosts, "retell": self.retell_recording_hosts}.get(source, ())
        return tuple(dict.fromkeys((*self.recording_url_hosts, *own)))

    def require(self, names: list[str], purpose: str) -> None:
        """Fail with one message listing every named variable that is empty."""
        by_env = {f.metadata["env"]: f.name for f in dataclasses.fields(self)}
        missing = [n for n in names if not getattr(self, by_env[n])]
        if missing:
            raise SettingsError([f"{n} is required {purpose}" for n in missing])


def declared() -> list[dataclasses.Field]:
    """Every setting's field, in declaration order (the docs table and tests read it)."""
    return list(dataclasses.fields(Settings))


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_HINTS = typing.get_type_hints(Settings)
_PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: _parse_bool,
    Path: lambda raw: Path(raw).expanduser(),
    tuple[str, ...]: _parse_list,
}
_TYPE_NAMES = {str: "text", int: "whole number", float: "number", bool: "boolean", Path: "path", tuple[str, ...]: "list"}


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str | None:
    from urllib.parse import urlsplit

    if value and (urlsplit(value).scheme not in schemes or not urlsplit(value).netloc and schemes != ("sqlite",)):
        return f"{name} must be a {'/'.join(schemes)} URL, got {value!r}"
    return None


# AUDIO_LOUDNESS: quieter than -40 LUFS is barely audible on a phone; louder than -9 cannot be reached
# without crushing speech in the limiter. AUDIO_TRUE_PEAK: loudnorm's own range for its TP option.
LOUDNESS_RANGE = (-40.0, -9.0)
TRUE_PEAK_RANGE = (-9.0, 0.0)

#: Shortest API token and callback secret accepted: a guess or an offline brute force must stay hopeless.
MIN_SECRET_BYTES = 32


def _cross_checks(s: Settings) -> list[str]:
    """What one variable alone cannot tell: URLs, secrets and the ranges of the media settings."""
    problems = [*_address_checks(s), *_secret_checks(s), *_media_checks(s)]
    if s.alert_failure_rate > 1:
        problems.append(f"ALERT_FAILURE_RATE must be from 0 to 1, got {s.alert_failure_rate:g}")
    return problems


#: RECORDING_URL_HOSTS' entries (services/ingest/validation.py reads them): host[:port], *.domain or *.
_URL_HOST_RE = re.compile(r"^(?:\*|\*\.[A-Za-z0-9.-]+|(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?)$")


def _address_checks(s: Settings) -> list[str]:
    problems = []
    for name, value, schemes in (
        ("PUBLIC_BASE_URL", s.public_base_url, ("https", "http")),
        ("S3_ENDPOINT_URL", s.s3_endpoint_url, ("https", "http")),
        ("VIDEO_STATUS_CALLBACK_URL", s.video_status_callback_url, ("https", "http")),
        ("RABBITMQ_MANAGEMENT_URL", s.rabbitmq_management_url, ("https", "http")),
    ):
        problem = _check_url(name, value, schemes)
        if problem:
            problems.append(problem)
    if s.database_url and not s.database_url.startswith(("postgres://", "postgresql://", "sqlite:///")):
        problems.append(f"DATABASE_URL must start with postgresql:// or sqlite:///, got {s.database_url!r}")
    if not s.in_process_broker and not s.broker_url.startswith(("amqp://", "amqps://")):
        problems.append(f"BROKER_URL must be amqp://… or memory://, got {s.broker_url!r}")
    bad_hosts = [h for h in s.recording_url_hosts if not _URL_HOST_RE.match(h)]
    if bad_hosts:
        problems.append(f"RECORDING_URL_HOSTS entries must be host, host:port, *.domain or *; got {', '.join(map(repr, bad_hosts))}")
    if s.twilio_account_sid and not (s.twilio_account_sid.startswith("AC") and len(s.twilio_account_sid) == 34):
        problems.append("TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits")
    return problems


def _secret_checks(s: Settings) -> list[str]:
    problems = []
    if s.video_status_callback_url and not s.video_status_callback_secret:
        problems.append("VIDEO_STATUS_CALLBACK_SECRET is required when VIDEO_STATUS_CALLBACK_URL is set")
    elif s.video_status_callback_secret and len(s.video_status_callback_secret.encode()) < MIN_SECRET_BYTES:
        # A short HMAC key can be brute-forced offline from one signed callback.
        problems.append(
            f"VIDEO_STATUS_CALLBACK_SECRET must be at least {MIN_SECRET_BYTES} bytes long (got {len(s.video_status_callback_secret.encode())})"
        )
    if s.operators:
        from .operators import OperatorsError, parse_operators

        try:
            parse_operators(s.operators)
        except OperatorsError as exc:
            problems.append(str(exc))
        if not s.api_token:
            problems.append("OPERATORS needs CALLREEL_API_TOKEN too: the console's sessions are signed with a key derived from it")
    if s.api_token and len(s.api_token) < MIN_SECRET_BYTES:
        problems.append(f"CALLREEL_API_TOKEN must be at least {MIN_SECRET_BYTES} characters long (got {len(s.api_token)})")
    return problems


def _media_checks(s: Settings) -> list[str]:
    problems = []
    if s.video_crf > 51:
        problems.append(f"VIDEO_CRF must be between 0 and 51, got {s.video_crf}")
    if s.audio_pan > 1:
        problems.append(f"AUDIO_PAN must be between 0 and 1, got {s.audio_pan:g}")
    if not LOUDNESS_RANGE[0] <= s.audio_loudness <= LOUDNESS_RANGE[1]:
        problems.append(f"AUDIO_LOUDNESS must be between {LOUDNESS_RANGE[0]:g} and {LOUDNESS_RANGE[1]:g} LUFS, got {s.audio_loudness:g}")
    if not TRUE_PEAK_RANGE[0] <= s.audio_true_peak <= TRUE_PEAK_RANGE[1]:
        problems.append(f"AUDIO_TRUE_PEAK must be between {TRUE_PEAK_RANGE[0]:g} and {TRUE_PEAK_RANGE[1]:g} dBTP, got {s.audio_true_peak:g}")
    if s.panel_width % 2 or s.panel_height % 2:
        problems.append("PANEL_WIDTH and PANEL_HEIGHT must be even (H.264 with yuv420p needs even sizes)")
    return problems


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise one SettingsError listing all problems."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in declared():
        name = f.metadata["env"]
        raw = environ.get(name)
        if raw is None or raw == "" and _HINTS[f.name] is not str:
            continue
        try:
            value = _PARSERS[_HINTS[f.name]](raw)
        except ValueError as exc:
            problems.append(f"{name}={raw!r} is not a valid {_TYPE_NAMES[_HINTS[f.name]]} ({exc})")
            continue
        choices, minimum = f.metadata["choices"], f.metadata["minimum"]
        if choices and value not in choices:
            problems.append(f"{name}={raw!r} must be one of {', '.join(choices)}")
            continue
        if minimum is not None and value < minimum:
            problems.append(f"{name}={raw!r} must be at least {minimum:g}")
            continue
        values[f.name] = value
    settings = Settings(**values)
    problems += _cross_checks(settings)
    if problems:
        raise SettingsError(problems)
    return settings


_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _cached() -> Settings:
    return load_settings()


def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    with _lock:
        return _cached()


def reload_settings(**overrides: str) -> Settings:
    """Forget the cached settings and read the environment again (tests, CLI).

    ``overrides`` (``VIDEO_LAYOUT="vertical"``) are set in this process's
    environment first, so code that reads the settings itself (the workers of
    ``callreel render``) sees them too.
    """
    with _lock:
        os.environ.update(overrides)
        _cached.cache_clear()
        return _cached()


def markdown_table() -> str:
    """docs/configuration.md's table, made from the declarations above."""
    rows = ["| Variable | Default | Service | What it is for |", "|---|---|---|---|"]
    for f in declared():
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        if f.metadata["env"] == "TMP_DIR":
            default = "system temp"
        shown = f"`{default}`" if str(default) not in ("",) else "—"
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['group']} | {f.metadata['help']} |")
    return "\n".join(rows)


TABLE_MARKERS = ("<!-- settings-table:start -->", "<!-- settings-table:end -->")


def refresh_docs(path: str | Path = "docs/configuration.md") -> bool:
    """Rewrite the table between the page's markers; True if it changed."""
    text = Path(path).read_text()
    start, end = TABLE_MARKERS
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    updated = f"{head}{start}\n{markdown_table()}\n{end}{tail}"
    Path(path).write_text(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--docs"]:
        print("docs/configuration.md updated" if refresh_docs() else "docs/configuration.md already up to date")
    else:
        print(markdown_table())
