"""The fal.ai audio-to-video models callreel can drive: one entry per model.

An entry says how the model's input is built from an avatar image, an audio
URL, a prompt and the segment's length, the longest audio it accepts, and
where its result keeps the video URL. It is data, not client code, so the
audio stage (which cuts the segments) and the generation stage (which submits
them) read the same limits. Adding a model is adding one entry to ``MODELS``.

The fields and limits follow each model's page on fal.ai (``/api`` and
``llms.txt``):

- ``fal-ai/stable-avatar``: image_url, audio_url, prompt (required); videos up
  to five minutes.
- ``fal-ai/kling-video/ai-avatar/v2/standard`` and ``/pro``: image_url,
  audio_url, prompt (optional, default "."); Kling Avatar 2.0 takes up to five
  minutes of audio.
- ``fal-ai/bytedance/omnihuman/v1.5``: image_url, audio_url, prompt,
  resolution ("720p" or "1080p", default "1080p"); 60 s of audio at 720p but
  only 30 s at 1080p, so callreel asks for 720p.
- ``veed/fabric-1.0``: image_url, audio_url and ``resolution`` ("480p" or
  "720p"), which is required; audio up to 300 s. 480p: callreel's panels are
  640×480, and it is about half the price.
- ``fal-ai/infinitalk``: image_url, audio_url, prompt (required) and
  ``num_frames`` (41–721, default 145, at 25 fps). The video is as long as
  ``num_frames`` says, not as long as the audio, so the frame count is
  derived from the segment's length and one job covers at most 28.8 s.

Every model returns ``{"video": {"url": …, "content_type": "video/mp4", …}}``.

List prices (``price_per_second``, US dollars per generated second of video;
``min_seconds``: the least a job is billed), read on 2026-12-03 through the
project's search of stored fal.ai pages:

- ``fal-ai/stable-avatar``: "$0.10 per generated second, with a minimum of 4
  seconds" (fal.ai/models/fal-ai/stable-avatar/llms.txt).
- ``fal-ai/bytedance/omnihuman/v1.5``: "$0.16/second" (fal.ai/learn/devs/
  omnihuman-15-user-guide).
- ``veed/fabric-1.0``: "480p - $0.08 per second, 720p - $0.15 per second", read
  on the page of its text variant (fal.ai/models/veed/fabric-1.0/text/llms.txt);
  callreel asks for 480p.
- ``fal-ai/kling-video/ai-avatar/v2/standard`` and ``/pro``, ``fal-ai/infinitalk``:
  no price found on fal.ai's own pages (third parties quote Kling Avatar 2.0 at
  $0.056 and $0.112 per second elsewhere), so none is recorded: the cost guard
  estimates such a model at the highest price known here (:func:`price_per_second`).

The speech-to-text models (``SPEECH_MODELS``, for STT_MODEL) are a second,
smaller table. ``fal-ai/wizper`` (Whisper v3 large, fal's faster build) and
``fal-ai/whisper`` take the same input: ``audio_url`` (required), ``task``
(``transcribe`` | ``translate``), ``language`` (an ISO 639-1 code; null: detect
it) and ``chunk_level`` (``segment``); both answer ``{"text": …, "chunks":
[{"timestamp": [start, end], "text": …}, …]}`` with times in seconds from the
start of the audio sent (``fal-ai/whisper`` adds ``speaker`` to a chunk when
asked to diarize, which callreel does not need: each side is one voice).
Prices: both pages' pricing line read "$0 per compute seconds" on 2026-12-03,
which is no price at all, so none is recorded here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FalModel", "MODELS", "PRICES_READ_ON", "price_per_second", "billed_dollars",
    "model_for", "UnknownModel", "CUT_MARGIN", "segment_limit", "job_timeout", "TIMEOUT_SAFETY", "poll_interval",
    "SpeechModel", "SPEECH_MODELS", "speech_model_for",
]

# An MP3 cut by FFmpeg comes out a little longer than asked (whole frames of
# 1152 samples, 0.144 s each at Twilio's 8 kHz, plus encoder padding), so
# segments are planned this much below a model's documented limit.
CUT_MARGIN = 1.0

InputBuilder = Callable[[str, str, str, float], dict[str, Any]]

# Seconds of fal compute per second of video when a model's entry names none:
# the slow end of what avatar models take (1.5–4×, issue #26).
DEFAULT_COMPUTE_RATIO = 4.0
# A running job is given this many times its expected compute before it is
# cancelled: fal's machines vary, and cancelling a healthy job loses all of it.
TIMEOUT_SAFETY = 2.0


class UnknownModel(ValueError):
    pass


def _video_url(result: dict[str, Any]) -> str:
    return result["video"]["url"]


@dataclass(frozen=True)
class FalModel:
    endpoint: str
    limit_seconds: float  # the longest audio the model documents
    build_input: InputBuilder = field(repr=False)  # (image_url, audio_url, prompt, seconds) -> input JSON
    read_video_url: Callable[[dict[str, Any]], str] = field(default=_video_url, repr=False)
    # Seconds of fal compute per second of generated video (an upper estimate): a job's timeout scales with it.
    compute_ratio: float = DEFAULT_COMPUTE_RATIO
    price: float | None = None  # list price, US dollars per generated second; None: not found (see the module's text)
    min_seconds: float = 0.0  # the least one job is billed for

    @property
    def max_audio_seconds(self) -> float:
        """The longest segment to plan for this model (its limit less the cutting margin)."""
        return self.limit_seconds - CUT_MARGIN


def _image_audio_prompt(image_url: str, audio_url: str, prompt: str, seconds: float) -> dict[str, Any]:
    return {"image_url": image_url, "audio_url": audio_url, "prompt": prompt}


def _omnihuman(image_url: str, audio_url: str, prompt: str, seconds: float) -> dict[str, Any]:
    return {"image_url": image_url, "audio_url": audio_url, "prompt": prompt, "resolution": "720p"}


def _fabric(image_url: str, audio_url: str, prompt: str, seconds: float) -> dict[str, Any]:
    return {"image_url": image_url, "audio_url": audio_url, "resolution": "480p"}


INFINITALK_FPS = 25
INFINITALK_FRAMES = (41, 721)


def _infinitalk(image_url: str, audio_url: str, prompt: str, seconds: float) -> dict[str, Any]:
    # Frames for the whole segment plus the cutting margin, as 4n+1 like the
    # model's own bounds (41, 145, 721), clamped to what it accepts.
    frames = math.ceil((seconds + CUT_MARGIN) * INFINITALK_FPS / 4) * 4 + 1
    frames = max(INFINITALK_FRAMES[0], min(INFINITALK_FRAMES[1], frames))
    return {
        "image_url": image_url,
        "audio_url": audio_url,
        "prompt": prompt,
        "num_frames": frames,
        "resolution": "480p",
    }


MODELS: dict[str, FalModel] = {
    m.endpoint: m
    for m in (
        # compute_ratio: upper estimates (issue #26 puts avatar models at 1.5–4× real time); TIMEOUT_SAFETY doubles them.
        FalModel("fal-ai/stable-avatar", 300, _image_audio_prompt, compute_ratio=4.0, price=0.10, min_seconds=4),
        FalModel("fal-ai/kling-video/ai-avatar/v2/standard", 300, _image_audio_prompt, compute_ratio=3.0),
        FalModel("fal-ai/kling-video/ai-avatar/v2/pro", 300, _image_audio_prompt, compute_ratio=4.0),
        FalModel("fal-ai/bytedance/omnihuman/v1.5", 60, _omnihuman, compute_ratio=4.0, price=0.16),
        FalModel("veed/fabric-1.0", 300, _fabric, compute_ratio=2.0, price=0.08),
        FalModel("fal-ai/infinitalk", (INFINITALK_FRAMES[1] - 1) / INFINITALK_FPS, _infinitalk, compute_ratio=4.0),
    )
}


def segment_limit(model: FalModel, setting: float) -> float:
    """The longest segment to plan: SEGMENT_MAX_SECONDS (``setting``), never past the model's limit; 0: the model's limit.

    Shorter segments are more jobs run side by side, so a long side is ready
    in about one segment's generation instead of the whole side's. The floor
    keeps a segment well above the planner's shortest (``shared.segments.MIN_SEGMENT``).
    """
    if setting <= 0:
        return model.max_audio_seconds
    return min(model.max_audio_seconds, max(setting, 5.0))


def job_timeout(model: FalModel, seconds: float, floor: int) -> int:
    """Seconds a running job generating ``seconds`` of video may take: FAL_JOB_TIMEOUT (``floor``) at least.

    A five-minute segment on a model at 4× real time needs 20 minutes: a fixed
    timeout would cancel it however healthy it is.
    """
    return max(floor, math.ceil(seconds * model.compute_ratio * TIMEOUT_SAFETY))


# A running job is looked at about this many times over its expected compute,
# and never more often than every MIN_POLL_SECONDS.
POLLS_PER_JOB = 8
MIN_POLL_SECONDS = 1.0


def poll_interval(model: FalModel, seconds: float, setting: float) -> float:
    """Seconds between status polls of a job generating ``seconds`` of video: FAL_POLL_INTERVAL (``setting``) at most.

    A fixed interval costs a short job most: a 4 s segment is done in 6–16 s
    (1.5–4× real time), and a result found up to 7 s late (the default
    interval) is half as long again. Polling at an eighth of the expected
    compute finds it within 2 s; a long job keeps the setting's pace.
    """
    return min(setting, max(MIN_POLL_SECONDS, seconds * model.compute_ratio / POLLS_PER_JOB))


PRICES_READ_ON = "2026-12-03"


def price_per_second(model: FalModel) -> float:
    """The model's list price per generated second; a model without a known price counts at the dearest known one."""
    if model.price is not None:
        return model.price
    return max(m.price for m in MODELS.values() if m.price is not None)


def billed_dollars(model: FalModel, seconds: float) -> float:
    """What one job making ``seconds`` of video costs at list price (fal bills at least ``min_seconds``)."""
    return max(seconds, model.min_seconds) * price_per_second(model)


def model_for(endpoint: str) -> FalModel:
    try:
        return MODELS[endpoint]
    except KeyError:
        raise UnknownModel(f"FAL_MODEL {endpoint!r} is not supported; known: {', '.join(sorted(MODELS))}") from None


@dataclass(frozen=True)
class SpeechModel:
    """A fal.ai speech-to-text model: how its input is built from an audio URL and a language."""

    endpoint: str

    def build_input(self, audio_url: str, language: str) -> dict[str, Any]:
        # An empty STT_LANGUAGE asks the model to detect the language (null, as the schema documents).
        return {"audio_url": audio_url, "task": "transcribe", "language": language or None, "chunk_level": "segment"}


SPEECH_MODELS: dict[str, SpeechModel] = {m.endpoint: m for m in (SpeechModel("fal-ai/wizper"), SpeechModel("fal-ai/whisper"))}


def speech_model_for(endpoint: str) -> SpeechModel:
    try:
        return SPEECH_MODELS[endpoint]
    except KeyError:
        raise UnknownModel(f"STT_MODEL {endpoint!r} is not supported; known: {', '.join(sorted(SPEECH_MODELS))}") from None
