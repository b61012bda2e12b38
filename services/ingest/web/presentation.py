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

# The rules themselves are shared with POST /calls and the platforms' webhooks (services/ingest/submission.py).
from shared.presentation import check_presentation as check_patch

from ..body import read_capped

__all__ = ["check_patch", "read_patch", "MAX_PATCH_BYTES"]

MAX_PATCH_BYTES = 16 * 1024


def read_patch(req: falcon.Request) -> Any:
    raw = read_capped(req, MAX_PATCH_BYTES)
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise falcon.HTTPBadRequest(title="Invalid presentation", description=f"the body is not JSON: {exc}") from None
