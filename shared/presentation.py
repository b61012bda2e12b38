"""How one call is presented: its names, avatars, layout and captions mode, each the call's own or the deployment's.

The ``calls`` row may carry its own ``caller_name``, ``callee_name``,
``caller_avatar_url``, ``callee_avatar_url``, ``video_layout`` and
``captions`` (set by the host application on its row, by ``PATCH
/calls/{callId}`` or by ``callreel render``); a None or empty column means the
deployment's setting (CALLER_LABEL, CALLER_AVATAR_URL, VIDEO_LAYOUT, CAPTIONS),
and so does a layout or captions mode that is not one of the setting's choices
(the host application writes its row without our validation: a typo there
must not fail a render).
The compositor and the generation both read it through :func:`presentation_for`,
so they cannot disagree on which avatar or name a call has.

An avatar reference is one of: ``""`` (the shipped image), an object key under
``avatars/`` (an image checked and stored by :mod:`shared.avatars`), or a URL
(the host application's or the deployment's, fetched as it is).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from .models import Call
from .settings import VIDEO_LAYOUTS, Settings

__all__ = [
    "Presentation",
    "presentation_for",
    "is_stored_avatar",
    "name_problem",
    "check_presentation",
    "CAPTIONS_MODES",
    "NAME_MAX",
]

STORED_PREFIX = "avatars/"
CAPTIONS_MODES = ("burn", "track", "off")
NAME_MAX = 80  # characters: a label longer than this is cut on any panel anyway (services/compositor/labels.py)


@dataclass(frozen=True)
class Presentation:
    caller_name: str
    callee_name: str
    caller_avatar: str  # "" → the shipped image; "avatars/…" → a stored key; else a URL
    callee_avatar: str
    video_layout: str
    captions: str

    def name(self, side: str) -> str:
        return self.caller_name if side == "caller" else self.callee_name

    def avatar(self, side: str) -> str:
        return self.caller_avatar if side == "caller" else self.callee_avatar


def is_stored_avatar(reference: str) -> bool:
    """Whether an avatar reference is an object key in the store (rather than a URL or the default)."""
    return reference.startswith(STORED_PREFIX)


def _own(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def presentation_for(call: Call | None, settings: Settings) -> Presentation:
    """``call``'s presentation, each unset field the deployment's (``call=None``: the deployment's alone)."""

    def pick(column: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        own = _own(getattr(call, column, None)) if call is not None else None
        return own if own is not None and (choices is None or own in choices) else default

    return Presentation(
        caller_name=pick("caller_name", settings.caller_label),
        callee_name=pick("callee_name", settings.callee_label),
        caller_avatar=pick("caller_avatar_url", settings.caller_avatar_url),
        callee_avatar=pick("callee_avatar_url", settings.callee_avatar_url),
        video_layout=pick("video_layout", settings.video_layout, VIDEO_LAYOUTS),
        captions=pick("captions", settings.captions, CAPTIONS_MODES),
    )


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a side's name (a label drawn on its panel), or None when it can."""
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty (null: the deployment's label)"
    if len(value) > NAME_MAX:
        return f"is {len(value)} characters long, at most {NAME_MAX}"
    # Control characters (newlines, escapes, NUL) and line or paragraph separators would break the one-line label.
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")})
    if bad:
        return f"has control characters ({', '.join(bad)})"
    return None


NAMES = ("caller_name", "callee_name")
CHOICES = {"video_layout": VIDEO_LAYOUTS, "captions": CAPTIONS_MODES}
# Avatars take only null here: an image is uploaded and checked (shared/avatars.py), never fetched from a URL given.
AVATARS = ("caller_avatar_url", "callee_avatar_url")


def check_presentation(body: Any) -> tuple[dict[str, Any], list[str]]:
    """The columns a PATCH body (or a submission's presentation fields) sets, and every problem with it.

    The body applies only when there are none.
    """
    if not isinstance(body, dict):
        return {}, ["the body must be a JSON object"]
    changes: dict[str, Any] = {}
    problems = []
    for field, value in body.items():
        if field in NAMES:
            problem = None if value is None else name_problem(value)
            if problem:
                problems.append(f"{field} {problem}")
            else:
                changes[field] = value.strip() if isinstance(value, str) else None
        elif field in CHOICES:
            if value is None or value in CHOICES[field]:
                changes[field] = value
            else:
                problems.append(f"{field} must be one of {', '.join(CHOICES[field])} or null, not {value!r}")
        elif field in AVATARS:
            if value is None:
                changes[field] = None
            else:
                side = field.split("_")[0]
                problems.append(f"{field} takes only null here: upload the image with PUT /calls/{{callId}}/avatars/{side}")
        else:
            problems.append(f"unknown field {field!r}")
    if not body:
        problems.append("nothing to change: give at least one of " + ", ".join((*NAMES, *CHOICES, *AVATARS)))
    return changes, problems
