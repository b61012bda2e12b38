"""A call's transcript: who said what, when; read from JSON, WebVTT or SRT, written as WebVTT and JSON.

A recording is dual-channel, so every turn already belongs to one side: the
``caller`` (left channel) or the ``callee`` (right). A transcript is a list of
such turns, from the host application (any of the three formats) or from
speech-to-text.

Reading never stops at the first mistake: :func:`parse_transcript` collects
every problem it finds (with line numbers where the format has lines) and
raises one :class:`TranscriptError` carrying them all, so whoever sent the
file fixes it in one pass, and nothing half-read is ever returned.

Accepted inputs:

- JSON: ``[{"speaker": "caller"|"callee", "start": s, "end": s, "text": "…"}, …]``
  (or the same list under a ``"turns"`` key, as :func:`to_json` writes it);
- WebVTT whose cues carry voice tags, ``<v Caller>Hello</v>``;
- SRT whose cue text starts with the speaker's name, ``Caller: Hello``.

Speaker names are matched case-insensitively against ``caller``/``callee``
and any aliases given (a deployment's labels, "AI agent" and "Customer").
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SPEAKERS",
    "DEFAULT_NAMES",
    "FORMATS",
    "TIME_TOLERANCE",
    "Turn",
    "Transcript",
    "TranscriptError",
    "sniff_format",
    "parse_transcript",
    "speaker_names",
    "to_webvtt",
    "to_json",
    "vtt_time",
]

SPEAKERS = ("caller", "callee")
FORMATS = ("json", "vtt", "srt")
# Times a little past the end of the call are clamped, not refused: the host's
# idea of the call's length (its own clock, another decoder) differs from
# ffprobe's by a frame or two.
TIME_TOLERANCE = 0.5
DEFAULT_NAMES = {"caller": "Caller", "callee": "Callee"}


@dataclass(frozen=True)
class Turn:
    """One stretch of one side speaking; times in seconds from the start of the recording."""

    speaker: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """Both sides' turns, ordered by start time."""

    turns: tuple[Turn, ...]

    def by_speaker(self, speaker: str) -> list[Turn]:
        return [t for t in self.turns if t.speaker == speaker]


class TranscriptError(ValueError):
    """The transcript was refused; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"transcript refused ({len(problems)} problem(s)):\n{lines}")


# -- reading ---------------------------------------------------------------


def sniff_format(text: str) -> str:
    """``json``, ``vtt`` or ``srt``, from the first characters of the file."""
    head = text.lstrip("\ufeff \t\r\n")
    if head.startswith(("[", "{")):
        return "json"
    if head.startswith("WEBVTT"):
        return "vtt"
    return "srt"


def _speaker_table(aliases: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """Lower-cased name → side; ``aliases`` maps a name (e.g. "AI agent") to ``caller``/``callee``."""
    table = {side: side for side in SPEAKERS}
    items = aliases.items() if isinstance(aliases, Mapping) else (aliases or ())
    for name, side in items:
        if side not in SPEAKERS:
            raise ValueError(f"alias {name!r} must name caller or callee, not {side!r}")
        if name.strip():
            table[" ".join(name.split()).casefold()] = side
    return table


def speaker_names(caller_label: str = "", callee_label: str = "") -> dict[str, str]:
    """Aliases for :func:`parse_transcript` from a deployment's labels (empty labels are skipped)."""
    return {label: side for label, side in ((caller_label, "caller"), (callee_label, "callee")) if label.strip()}


def _lookup(table: dict[str, str], name: str) -> str | None:
    return table.get(" ".join(name.split()).casefold())


_TIMESTAMP = re.compile(r"^(?:(\d+):)?([0-5]\d):([0-5]\d)[.,](\d{3})$")


def _seconds(stamp: str) -> float | None:
    match = _TIMESTAMP.match(stamp.strip())
    if match is None:
        return None
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blank-line-separated blocks with the 1-based line number of each block's first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def _timing(line: str, number: int, problems: list[str]) -> tuple[float, float] | None:
    parts = line.split("-->")
    if len(parts) != 2:
        problems.append(f"line {number}: expected a timing line 'start --> end', got {line[:60]!r}")
        return None
    start = _seconds(parts[0])
    # WebVTT may follow the end time with cue settings ("align:start").
    end_field = parts[1].split()
    end = _seconds(end_field[0]) if end_field else None
    if start is None or end is None:
        problems.append(f"line {number}: unreadable time in {line[:60]!r} (expected HH:MM:SS.mmm)")
        return None
    return start, end


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>]*)>")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>|<\d[^>]*>")


def _vtt_plain(payload: str) -> str:
    """Cue text without its markup (tags, timestamps) and with entities decoded."""
    return html.unescape(_TAG.sub("", payload))


def _parse_vtt(text: str, table: dict[str, str], problems: list[str]) -> list[tuple[int, Turn]]:
    blocks = _blocks(text.lstrip("\ufeff"))
    if not blocks or not blocks[0][1][0].startswith("WEBVTT"):
        problems.append("line 1: a WebVTT file must start with 'WEBVTT'")
        return []
    turns: list[tuple[int, Turn]] = []
    for first, lines in blocks[1:]:
        if lines[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in lines[0]:
            continue
        # An optional cue identifier comes before the timing line.
        at = 0 if "-->" in lines[0] else 1
        if at >= len(lines) or "-->" not in lines[at]:
            problems.append(f"line {first}: expected a timing line 'start --> end', got {lines[0][:60]!r}")
            continue
        times = _timing(lines[at], first + at, problems)
        payload = "\n".join(lines[at + 1 :])
        if times is None:
            continue
        voices = list(_VOICE.finditer(payload))
        if not voices:
            problems.append(f"line {first + at + 1}: cue has no voice tag naming the speaker (<v Caller>…)")
            continue
        # A cue may hold both sides (<v Caller>…</v> <v Callee>…): one turn for each voice.
        for index, voice in enumerate(voices):
            stop = voices[index + 1].start() if index + 1 < len(voices) else len(payload)
            name = html.unescape(voice[1])
            side = _lookup(table, name)
            if side is None:
                problems.append(f"line {first + at + 1}: unknown speaker {name.strip()[:40]!r}")
                continue
            turns.append((first + at, Turn(side, times[0], times[1], _vtt_plain(payload[voice.end() : stop]))))
    return turns


_SRT_NAME = re.compile(r"^\s*(?:\[([^\]]{1,60})\]|([^:]{1,60}):)\s*")
_SRT_TAG = re.compile(r"</?(?:b|i|u|font)(?:\s[^>]*)?>", re.IGNORECASE)


def _parse_srt(text: str, table: dict[str, str], problems: list[str]) -> list[tuple[int, Turn]]:
    turns: list[tuple[int, Turn]] = []
    for first, lines in _blocks(text.lstrip("\ufeff")):
        at = 0 if "-->" in lines[0] else 1
        if at == 1 and not lines[0].strip().isdigit():
            problems.append(f"line {first}: expected a cue number, got {lines[0][:40]!r}")
            continue
        if at >= len(lines) or "-->" not in lines[at]:
            problems.append(f"line {first + at}: expected a timing line 'start --> end', got {lines[min(at, len(lines) - 1)][:60]!r}")
            continue
        times = _timing(lines[at], first + at, problems)
        if times is None:
            continue
        body = [_SRT_TAG.sub("", line) for line in lines[at + 1 :]]
        if not body:
            problems.append(f"line {first + at}: cue has no text")
            continue
        # The first line names the speaker; a later line that starts with the
        # other side's name is that side talking over (same times).
        current: tuple[str, list[str]] | None = None
        pieces: list[tuple[str, list[str]]] = []
        for offset, line in enumerate(body):
            match = _SRT_NAME.match(line)
            side = _lookup(table, match[1] or match[2]) if match else None
            if side is not None and match:
                current = (side, [line[match.end() :]])
                pieces.append(current)
            elif current is None:
                shown = (match[1] or match[2]).strip()[:40] if match else line.strip()[:40]
                what = (
                    f"unknown speaker {shown!r}" if match else f"cue text must start with the speaker's name ('Caller: …'), got {shown!r}"
                )
                problems.append(f"line {first + at + 1 + offset}: {what}")
                break
            else:
                current[1].append(line)
        for side, text_lines in pieces:
            turns.append((first + at, Turn(side, times[0], times[1], "\n".join(text_lines))))
    return turns


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _parse_json(text: str, table: dict[str, str], problems: list[str]) -> list[tuple[int, Turn]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        problems.append(f"line {error.lineno}: malformed JSON ({error.msg}, column {error.colno})")
        return []
    if isinstance(data, dict) and isinstance(data.get("turns"), list):
        data = data["turns"]
    if not isinstance(data, list):
        problems.append("JSON transcript must be a list of turns ({speaker, start, end, text})")
        return []
    turns: list[tuple[int, Turn]] = []
    for number, item in enumerate(data, start=1):
        where = f"turn {number}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object with speaker, start, end, text")
            continue
        found = len(problems)
        speaker = item.get("speaker")
        side = _lookup(table, speaker) if isinstance(speaker, str) else None
        if side is None:
            problems.append(f"{where}: unknown speaker {str(speaker)[:40]!r} (caller or callee)")
        start, end = _number(item.get("start")), _number(item.get("end"))
        for key, value in (("start", start), ("end", end)):
            if value is None:
                problems.append(f"{where}: {key} must be a number of seconds")
        text_value = item.get("text")
        if not isinstance(text_value, str):
            problems.append(f"{where}: text must be a string")
        if len(problems) == found:
            turns.append((number, Turn(side, start, end, text_value)))  # type: ignore[arg-type]
    return turns


def _position(problem: str) -> int:
    """Where a problem is ("line 12: …", "turn 3: …"), so they are listed in file order."""
    match = re.match(r"(?:line|turn) (\d+):", problem)
    return int(match[1]) if match else 0


_PARSERS = {"json": _parse_json, "vtt": _parse_vtt, "srt": _parse_srt}


def _check(numbered: list[tuple[int, Turn]], fmt: str, duration: float | None, problems: list[str]) -> list[Turn]:
    """Times inside the call, end after start, some text: every failing turn is named."""
    kept: list[Turn] = []
    for number, turn in numbered:
        where = f"turn {number}" if fmt == "json" else f"line {number}"
        found = len(problems)
        if turn.start < 0:
            problems.append(f"{where}: start {turn.start:g} s is before the call")
        if duration is not None and turn.end > duration + TIME_TOLERANCE:
            problems.append(f"{where}: end {turn.end:g} s is after the end of the call ({duration:g} s)")
        if duration is not None and turn.start >= duration:
            problems.append(f"{where}: start {turn.start:g} s is not inside the call ({duration:g} s)")
        if turn.end <= turn.start:
            problems.append(f"{where}: end {turn.end:g} s is not after start {turn.start:g} s")
        text = turn.text.strip()
        if not text:
            problems.append(f"{where}: no text")
        if len(problems) == found:
            end = min(turn.end, duration) if duration is not None else turn.end
            kept.append(Turn(turn.speaker, round(turn.start, 3), round(end, 3), text))
    return kept


def parse_transcript(
    data: bytes | str,
    *,
    format: str | None = None,
    duration: float | None = None,
    max_bytes: int | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Transcript:
    """Read a transcript in any accepted format (sniffed when ``format`` is None) and check it.

    ``duration``: the call's length in seconds; every turn must lie inside it.
    ``max_bytes``: TRANSCRIPT_MAX_BYTES; a larger file is refused unread.
    Raises :class:`TranscriptError` with every problem found.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if max_bytes is not None and size > max_bytes:
        raise TranscriptError([f"transcript is {size} bytes, over the limit of {max_bytes} (TRANSCRIPT_MAX_BYTES)"])
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise TranscriptError([f"line {line}: not UTF-8 text (byte {error.start})"]) from None
    if not data.strip("\ufeff \t\r\n"):
        raise TranscriptError(["transcript is empty"])
    fmt = format or sniff_format(data)
    problems: list[str] = []
    numbered = _PARSERS[fmt](data, _speaker_table(aliases), problems)
    turns = _check(numbered, fmt, duration, problems)
    if not problems and not turns:
        problems.append("transcript has no turns")
    if problems:
        raise TranscriptError(sorted(problems, key=_position))
    return Transcript(tuple(sorted(turns, key=lambda t: (t.start, t.end, SPEAKERS.index(t.speaker)))))


# -- writing ---------------------------------------------------------------


def vtt_time(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (WebVTT; SRT wants a comma for the dot)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _vtt_escape(text: str) -> str:
    # Escaping "<", ">" and "&" keeps markup and "-->" out; a newline would be
    # a blank line (end of cue) at worst, so the payload is one line.
    return html.escape(" ".join(text.split()), quote=False)


def to_webvtt(transcript: Transcript, names: Mapping[str, str] | None = None) -> str:
    """WebVTT with one cue per turn and a voice tag naming its side (``<v Caller>``)."""
    names = {**DEFAULT_NAMES, **(names or {})}
    out = ["WEBVTT", ""]
    for number, turn in enumerate(transcript.turns, start=1):
        voice = _vtt_escape(names[turn.speaker]) or DEFAULT_NAMES[turn.speaker]
        out += [str(number), f"{vtt_time(turn.start)} --> {vtt_time(turn.end)}", f"<v {voice}>{_vtt_escape(turn.text)}</v>", ""]
    return "\n".join(out)


def to_json(transcript: Transcript) -> str:
    """The transcript as ``{"turns": [{speaker, start, end, text}, …]}`` (read back by :func:`parse_transcript`)."""
    turns = [{"speaker": t.speaker, "start": t.start, "end": t.end, "text": t.text} for t in transcript.turns]
    return json.dumps({"turns": turns}, ensure_ascii=False, indent=1) + "\n"
