"""The call list's query string (``status``, ``stage``, ``q``, ``reason``, ``limit``, ``cursor``), validated, and its pages.

The JSON API and the operator page take the same parameters and read the same
pages, so both refuse the same bad input with the same message. The cursor is
opaque to clients: the (created_at, id) of the last row of the previous page,
base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import falcon

from shared.calls import REASON_CHARS, ListPosition, newest_calls
from shared.models import STAGES, Call, Stage, VideoStatus

__all__ = [
    "ListQuery", "Page", "InvalidQuery", "parse_list_query", "encode_cursor", "decode_cursor", "read_page", "DEFAULT_LIMIT", "MAX_LIMIT",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PARAMS = ("status", "stage", "q", "reason", "limit", "cursor")
_SEARCH_RE = re.compile(r"^[A-Za-z0-9]{1,34}$")
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
STAGE_FILTERS = (*STAGES, Stage.DONE)


@dataclass(frozen=True)
class ListQuery:
    status: str | None = None
    stage: str | None = None
    search: str | None = None
    reason: str | None = None  # the start of an error message, as the overview's failure reasons give it
    limit: int = DEFAULT_LIMIT
    after: ListPosition | None = None

    def params(self, **changes: str | None) -> dict[str, str]:
        """This query as URL parameters (for links to the next page or another filter)."""
        values = {"status": self.status, "stage": self.stage, "q": self.search, "reason": self.reason}
        if self.limit != DEFAULT_LIMIT:
            values["limit"] = str(self.limit)
        values.update(changes)
        return {key: value for key, value in values.items() if value}


@dataclass
class Page:
    calls: list[Call]
    next_cursor: str | None
    query: ListQuery = field(default_factory=ListQuery)


class InvalidQuery(falcon.HTTPBadRequest):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(title="Invalid query", description="; ".join(problems))
        self.problems = problems


def encode_cursor(position: ListPosition) -> str:
    created = position.created_at.isoformat() if position.created_at else ""
    return base64.urlsafe_b64encode(f"{created}|{position.id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> ListPosition:
    """The position a cursor names; ValueError if it is not one this service made."""
    if not _CURSOR_RE.match(cursor):
        raise ValueError("bad characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64") from None
    created, sep, call_id = raw.partition("|")
    if not sep or not _ID_RE.match(call_id):
        raise ValueError("no call id")
    return ListPosition(dt.datetime.fromisoformat(created) if created else None, call_id)


def _single(params: Mapping[str, object], name: str, problems: list[str]) -> str | None:
    value = params.get(name)
    if isinstance(value, list):
        problems.append(f"{name} is given more than once")
        return None
    if value is None or value == "":
        return None
    return str(value).strip()


def _reason(params: Mapping[str, object], problems: list[str]) -> str | None:
    """The failure reason filter: kept as given (spaces are part of an error message), printable, capped."""
    reason = params.get("reason")
    if isinstance(reason, list):
        problems.append("reason is given more than once")
        return None
    if reason is None:
        return None
    text = str(reason)
    if not text or len(text) > REASON_CHARS or not text.isprintable():
        problems.append(f"reason must be printable text of 1 to {REASON_CHARS} characters")
        return None
    return text


def parse_list_query(params: Mapping[str, object]) -> ListQuery:
    """Validate ``params`` (a request's ``req.params``); raise one 400 naming every problem."""
    problems = []
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}: expected {', '.join(PARAMS)}")
    status = _single(params, "status", problems)
    if status and status not in VideoStatus.ALL:
        problems.append(f"status must be one of {', '.join(VideoStatus.ALL)}")
    stage = _single(params, "stage", problems)
    if stage and stage not in STAGE_FILTERS:
        problems.append(f"stage must be one of {', '.join(STAGE_FILTERS)}")
    search = _single(params, "q", problems)
    if search and not _SEARCH_RE.match(search):
        problems.append("q must be the start of a call id (CA…) or recording SID (RE…): letters and digits, at most 34")
    elif search and search[:2].upper() in ("CA", "RE"):
        search = search[:2].upper() + search[2:].lower()  # SIDs are two capitals and lowercase hex
    reason = _reason(params, problems)
    limit_text = _single(params, "limit", problems)
    limit = DEFAULT_LIMIT
    if limit_text is not None:
        if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
            problems.append(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        else:
            limit = int(limit_text)
    cursor = _single(params, "cursor", problems)
    after = None
    if cursor:
        try:
            after = decode_cursor(cursor)
        except ValueError:
            problems.append("cursor is not one this service returned (use next_cursor as given)")
    if problems:
        raise InvalidQuery(problems)
    return ListQuery(status=status or None, stage=stage or None, search=search, reason=reason, limit=limit, after=after)


def read_page(query: ListQuery) -> Page:
    """One page of calls, and the cursor of the next one (None on the last page)."""
    rows = newest_calls(
        status=query.status, stage=query.stage, search=query.search, reason=query.reason, limit=query.limit + 1, after=query.after
    )
    calls, more = rows[: query.limit], len(rows) > query.limit
    return Page(calls, encode_cursor(ListPosition.of(calls[-1])) if more else None, query)
