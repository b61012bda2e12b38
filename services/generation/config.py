"""What the generation service checks when it starts, so a bad deployment fails before its first message."""

from __future__ import annotations

from shared.fal_models import model_for, speech_model_for
from shared.settings import Settings, SettingsError

__all__ = ["check_configuration"]


def check_configuration(settings: Settings) -> None:
    """With a fal key: FAL_MODEL and STT_MODEL known, S3 for the store (but in `callreel render`/`serve`), fal-client on its host."""
    if not settings.uses_fal:
        return
    problems = []
    try:
        model_for(settings.fal_model)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        speech_model_for(settings.stt_model)
    except ValueError as exc:
        problems.append(str(exc))
    if not settings.uses_s3 and not settings.in_process_broker:
        # `callreel render`/`serve` (the in-process broker) send the inputs inside the request instead (inputs.py);
        # a deployed service's calls may be long, and its store is S3 anyway.
        problems.append("FAL_KEY needs S3 storage (S3_BUCKET): fal.ai fetches the audio and avatars by presigned URL")
    from .fal import check_queue_host

    try:
        check_queue_host(settings.fal_queue_run_host)
    except RuntimeError as exc:
        problems.append(str(exc))
    if problems:
        raise SettingsError(problems)
