"""What ``PATCH /calls/{callId}`` may change (the resources are api.py's), and the rules for ``PUT /calls/{callId}/avatars/{side}``.

PATCH takes a JSON object with any of ``caller_name``, ``callee_name``
(at most 80 characters, no control characters), ``video_layout`` (a
VIDEO_LAYOUT value), ``captions`` (``burn``, ``track``, ``off``), and
``caller_avatar_url``/``callee_avatar_url``, which take only ``null``: an
avatar image is uploaded by PUT, checked (shared/avatars.py) and stored,
never fetched from a URL the API was given, so the API cannot be made to fetch
from hosts inside the network. (The host application writing a URL into its
own ``calls`` row is its own doing: the workers fetch it like
CALLER_AVATAR_URL.) ``null`` clears a field back to the deployment's setting.
Every problem is named in one 400.

Changes apply whenever the compositor (names, layout, captions, the idle
still) or the generation (avatars) next runs for the call: before it has run,
the first video has them; after, a re-render (``POST /calls/{callId}/retry``
of a failed or partial call, or ``callreel retry``) does. No 409: nothing a
change does can break a call in flight, the worst is a video made with the
previous values.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from shared.presentation import CAPTIONS_MODES, name_problem
from shared.settings import VIDEO_LAYOUTS

from ..body import read_capped

__all__ = ["check_patch", "read_patch", "MAX_PATCH_BYTES"]

MAX_PATCH_BYTES = 16 * 1024
NAMES = ("caller_name", "callee_name")
CHOICES = {"video_layout": VIDEO_LAYOUTS, "captions": CAPTIONS_MODES}
AVATARS = ("caller_avatar_url", "callee_avatar_url")


def check_patch(body: Any) -> tuple[dict[str, Any], list[str]]:
    """The columns a PATCH body sets, and every problem with it (the body applies only when there are none)."""
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


def read_patch(req: falcon.Request) -> Any:
    raw = read_capped(req, MAX_PATCH_BYTES)
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise falcon.HTTPBadRequest(title="Invalid presentation", description=f"the body is not JSON: {exc}") from None
