"""What a Twilio recording status callback may contain, checked field by field.

A correct signature proves who sent a request, not that every value in it is
usable: each field is checked against the form Twilio gives it before anything
is stored or fetched. ``RecordingUrl`` matters most, because the download
worker fetches it with the account's credentials: it must be https, on an
allowed host, and name exactly this account's recording, so the service can
never be made to fetch (or send credentials to) an arbitrary URL.

Host allow-list entries (``TWILIO_RECORDING_HOSTS``) are ``host`` or
``host:port``. A bare host allows only the https default port 443; an entry
with a port allows that port only. Hosts match exactly (no wildcards), case
insensitively.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "InvalidWebhook",
    "RecordingStatus",
    "ACTIONABLE_STATUSES",
    "IGNORED_STATUSES",
    "parse_recording_status",
    "check_recording_url",
    "check_sid",
    "parse_hosts",
    "single_values",
    "HostList",
    "parse_host_list",
    "check_submitted_url",
]

SID_PREFIXES = {"AccountSid": "AC", "CallSid": "CA", "RecordingSid": "RE"}
_SID_RE = {field: re.compile(rf"^{prefix}[0-9a-f]{{32}}$") for field, prefix in SID_PREFIXES.items()}

#: Statuses that decide the call's fate.
ACTIONABLE_STATUSES = ("completed", "absent", "failed")
#: Statuses Twilio reports along the way; acknowledged and ignored.
IGNORED_STATUSES = ("in-progress", "paused", "stopped", "processing")

URL_MAX = 2048
_SOURCE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DURATION_MAX = 7 * 24 * 3600  # a week: far beyond any call Twilio records
#: An exact allow-list entry: a DNS name or an IP (IPv6 in brackets), and a port.
_HOST_ENTRY_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


class InvalidWebhook(ValueError):
    """The callback is malformed; ``problems`` says what, one line per field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class RecordingStatus:
    """A recording status callback whose every field has been checked."""

    account_sid: str
    call_sid: str
    recording_sid: str
    status: str
    recording_url: str | None
    duration: int | None  # seconds; None when Twilio does not know (-1) or did not say
    channels: int | None
    source: str | None
    start_time: dt.datetime | None
    error_code: int | None


def _clean(text: str) -> bool:
    """No control character (NUL, tab, newline, DEL, C1) and no blank at either end.

    The URL parser strips blanks and tabs before the allow-list check while the
    database would store them raw, and PostgreSQL refuses NUL outright: such a
    value is refused here, whatever the field, rather than normalised.
    """
    return text == text.strip() and not any(unicodedata.category(c) == "Cc" for c in text)


def single_values(form: Mapping[str, list[str]]) -> dict[str, str]:
    """One value per field; raise InvalidWebhook for a repeated field or a control character or blank.

    Twilio sends each field once. The signature covers the set of values of a
    repeated field, not which one the app would use, so a repeat is refused.
    """
    problems = []
    for name, values in form.items():
        shown = name[:40]
        if len(values) > 1:
            problems.append(f"{shown!r} is sent more than once")
        if not _clean(name):
            problems.append(f"field name {shown!r} has a control character or surrounding whitespace")
        if any(not _clean(value) for value in values):
            problems.append(f"{shown} has a control character or surrounding whitespace")
    if problems:
        raise InvalidWebhook(problems)
    return {name: values[0] for name, values in form.items()}


def check_sid(field: str, value: str) -> str:
    if not _SID_RE[field].match(value):
        raise ValueError(f"{field} must be {SID_PREFIXES[field]} followed by 32 lowercase hex digits, got {value[:40]!r}")
    return value


def parse_hosts(entries: Iterable[str]) -> frozenset[tuple[str, int]]:
    """``host`` / ``host:port`` entries as (host, port) pairs; a bare host means port 443."""
    allowed = set()
    for entry in entries:
        parts = urlsplit(f"//{entry.strip()}")
        if not parts.hostname:
            raise ValueError(f"invalid host {entry!r} in TWILIO_RECORDING_HOSTS")
        allowed.add((parts.hostname.lower(), parts.port or 443))
    return frozenset(allowed)


@dataclass(frozen=True)
class HostList:
    """``RECORDING_URL_HOSTS``: exact ``host[:port]`` entries, ``*.domain`` wildcards (port 443) and ``*`` (any host, port 443).

    Only an exact entry is trusted as it is; a host a wildcard lets through
    must still resolve to public addresses (download.check_destination).
    """

    exact: frozenset[tuple[str, int]]
    suffixes: tuple[str, ...]  # ".example.com"
    any_host: bool = False

    def allows(self, host: str, port: int) -> bool:
        host = host.lower()
        if (host, port) in self.exact:
            return True
        if port != 443:
            return False
        return self.any_host or any(host.endswith(suffix) and len(host) > len(suffix) for suffix in self.suffixes)

    def exact_entries(self) -> tuple[str, ...]:
        """The exact entries as ``host:port`` strings, for download.download_to's ``hosts``."""
        return tuple(f"{host}:{port}" for host, port in sorted(self.exact))


def parse_host_list(entries: Iterable[str], setting: str = "RECORDING_URL_HOSTS") -> HostList:
    exact: list[str] = []
    suffixes: list[str] = []
    any_host = False
    for entry in (e.strip() for e in entries):
        if entry == "*":
            any_host = True
        elif entry.startswith("*."):
            domain = entry[2:].lower()
            if not domain or "*" in domain or ":" in domain or "/" in domain:
                raise ValueError(f"invalid wildcard {entry!r} in {setting}: use *.example.com (port 443 only)")
            suffixes.append("." + domain)
        elif "*" in entry:
            raise ValueError(f"invalid host {entry!r} in {setting}: a wildcard is * or *.domain")
        elif entry:
            if not _HOST_ENTRY_RE.match(entry):
                raise ValueError(f"invalid host {entry[:60]!r} in {setting}: use host, host:port, *.domain or *")
            exact.append(entry)
    try:
        pairs = parse_hosts(exact)
    except ValueError:
        raise ValueError(f"invalid host in {setting}: {', '.join(exact)[:200]}") from None
    return HostList(exact=pairs, suffixes=tuple(suffixes), any_host=any_host)


def _https_url(url: str, field: str, *, credentials: str = "") -> tuple[SplitResult, str, int]:
    """``url`` split, with its host and port, if it is a well-formed https URL without credentials; ValueError otherwise."""
    if len(url) > URL_MAX:
        raise ValueError(f"{field} is longer than {URL_MAX} characters")
    if not _clean(url):
        raise ValueError(f"{field} has a control character or surrounding whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:
        raise ValueError(f"{field} is not a valid URL ({exc})") from None
    if parts.scheme != "https":
        raise ValueError(f"{field} must be https, got {parts.scheme or 'no'} scheme")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{field} must not carry credentials{credentials}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"{field} has no host")
    return parts, host, port


def check_submitted_url(url: object, hosts: HostList, *, field: str = "recording_url", setting: str = "RECORDING_URL_HOSTS") -> str:
    """Return ``url`` if it is an https URL on a host ``hosts`` allows; raise ValueError saying why not.

    Whoever submits a call chooses this URL, and a worker fetches it: it must
    be https, carry no credentials in it (they go in ``recording_auth``, which
    is kept sealed) and name a host the deployment allows. Whether the host
    resolves to a private address is checked when it is fetched (the answer
    may change until then).
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"{field} must be a non-empty string")
    parts, host, port = _https_url(url, field, credentials=": send them as recording_auth")
    if not hosts.allows(host, port):
        shown = host if port == 443 else f"{host}:{port}"
        if not (hosts.exact or hosts.suffixes or hosts.any_host):
            raise ValueError(f"{field}: recording URLs are off here ({setting} is empty); upload the file instead")
        raise ValueError(f"{field} host {shown!r} is not allowed ({setting})")
    return url


def check_recording_url(url: str, *, account_sid: str, recording_sid: str, hosts: Iterable[str]) -> str:
    """Return ``url`` if it is this account's recording on an allowed https host; raise ValueError otherwise."""
    parts, host, port = _https_url(url, "RecordingUrl")
    if (host, port) not in parse_hosts(hosts):
        shown = host if port == 443 else f"{host}:{port}"
        raise ValueError(f"RecordingUrl host {shown!r} is not an allowed Twilio host (TWILIO_RECORDING_HOSTS)")
    expected = f"/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}"
    if parts.path != expected or parts.query or parts.fragment:
        raise ValueError(f"RecordingUrl must be https://<twilio host>{expected}")
    return url


def _int(value: str, field: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?\d{1,12}", value):
        raise ValueError(f"{field} must be a whole number, got {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{field} must be between {low} and {high}, got {number}")
    return number


def parse_recording_status(form: Mapping[str, str], *, recording_hosts: Iterable[str]) -> RecordingStatus:
    """Check every field of a callback; raise InvalidWebhook listing every problem."""
    problems: list[str] = []

    def field(name: str, parse, *, required: bool):
        raw = form.get(name)
        if raw is None or raw == "":
            if required:
                problems.append(f"{name} is required")
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            problems.append(str(exc))
            return None

    status = field("RecordingStatus", _status, required=True)
    account_sid = field("AccountSid", lambda v: check_sid("AccountSid", v), required=True)
    call_sid = field("CallSid", lambda v: check_sid("CallSid", v), required=True)
    recording_sid = field("RecordingSid", lambda v: check_sid("RecordingSid", v), required=True)
    completed = status == "completed"
    duration = field("RecordingDuration", lambda v: _int(v, "RecordingDuration", -1, _DURATION_MAX), required=completed)
    channels = field("RecordingChannels", lambda v: _int(v, "RecordingChannels", 1, 2), required=completed)
    source = field("RecordingSource", _source, required=False)
    start_time = field("RecordingStartTime", _start_time, required=False)
    error_code = field("ErrorCode", lambda v: _int(v, "ErrorCode", 0, 10**9), required=False)
    url = None
    if account_sid and recording_sid:
        url = field(
            "RecordingUrl",
            lambda v: check_recording_url(v, account_sid=account_sid, recording_sid=recording_sid, hosts=recording_hosts),
            required=completed,
        )
    elif completed and not form.get("RecordingUrl"):
        problems.append("RecordingUrl is required")
    if problems:
        raise InvalidWebhook(problems)
    return RecordingStatus(
        account_sid=account_sid,
        call_sid=call_sid,
        recording_sid=recording_sid,
        status=status,
        recording_url=url,
        duration=None if duration is None or duration < 0 else duration,
        channels=channels,
        source=source,
        start_time=start_time,
        error_code=error_code,
    )


def _status(value: str) -> str:
    if value not in ACTIONABLE_STATUSES + IGNORED_STATUSES:
        raise ValueError(f"RecordingStatus {value[:40]!r} is not one Twilio sends")
    return value


def _source(value: str) -> str:
    if not _SOURCE_RE.match(value):
        raise ValueError(f"RecordingSource {value[:40]!r} is not a Twilio recording source")
    return value


def _start_time(value: str) -> dt.datetime:
    # Twilio sends RFC 2822 dates ("Mon, 22 Aug 2011 08:13:07 +0000").
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"RecordingStartTime {value[:60]!r} is not an RFC 2822 date") from None
