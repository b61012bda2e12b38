"""The fal.ai audio-to-video models callreel can drive: one entry per model.

An entry says how the model's input is built from an avatar image, an audio
URL and a prompt, the longest audio it accepts, and where its result keeps the
video URL. It is data, not client code, so the audio stage (which cuts the
segments) and the generation stage (which submits them) read the same limits.
Adding a model is adding one entry to ``MODELS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["FalModel", "MODELS", "model_for", "UnknownModel"]


class UnknownModel(ValueError):
    pass


def _video_url(result: dict[str, Any]) -> str:
    return result["video"]["url"]


@dataclass(frozen=True)
class FalModel:
    endpoint: str
    max_audio_seconds: float
    build_input: Callable[[str, str, str], dict[str, Any]] = field(repr=False)
    read_video_url: Callable[[dict[str, Any]], str] = field(default=_video_url, repr=False)


def _image_audio_prompt(image_url: str, audio_url: str, prompt: str) -> dict[str, Any]:
    return {"image_url": image_url, "audio_url": audio_url, "prompt": prompt}


def _image_audio(image_url: str, audio_url: str, prompt: str) -> dict[str, Any]:
    return {"image_url": image_url, "audio_url": audio_url}


MODELS: dict[str, FalModel] = {
    m.endpoint: m
    for m in (
        FalModel("fal-ai/stable-avatar", 300, _image_audio_prompt),
        FalModel("fal-ai/kling-video/ai-avatar/v2/standard", 300, _image_audio_prompt),
        FalModel("fal-ai/kling-video/ai-avatar/v2/pro", 300, _image_audio_prompt),
        FalModel("fal-ai/bytedance/omnihuman/v1.5", 60, _image_audio),
        FalModel("veed/fabric-1.0", 300, _image_audio),
        FalModel("fal-ai/infinitalk", 300, _image_audio_prompt),
    )
}


def model_for(endpoint: str) -> FalModel:
    try:
        return MODELS[endpoint]
    except KeyError:
        raise UnknownModel(f"FAL_MODEL {endpoint!r} is not supported; known: {', '.join(sorted(MODELS))}") from None
