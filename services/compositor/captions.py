"""Captions: a transcript's turns laid out as short cues, written as ASS (burned in) and WebVTT (a track).

Layout rules (what subtitle style guides ask for, so a muted viewer can read along):

- a cue holds at most two lines of at most ``MAX_LINE`` characters;
- a turn is cut into cues at sentence ends first, then at commas, then
  between words (a "word" longer than a line is cut at the line length); the
  turns themselves are the pauses, since a transcript splits speech at them;
- each cue stays on screen between ``MIN_SECONDS`` and ``MAX_SECONDS``, its
  share of the turn following its share of the turn's characters; a turn too
  short for its cues may run on into the silence after it (up to the same
  side's next turn or the end of the call), and text that still doesn't fit
  is cut, ending in "…" (a 10,000-character line becomes as many cues as the
  turn has seconds, not an unreadable flicker);
- the two sides are laid out independently, each under its own panel, so when
  they talk over each other both are shown.

The burned-in captions are drawn by libass from an ``.ass`` file
(:func:`write_ass`), never by text spliced into the filter graph: nothing in a
transcript can reach FFmpeg's command line. Inside the file, the text is
escaped so that no ASS markup in it acts (:func:`ass_escape`).
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.transcript import DEFAULT_NAMES, SPEAKERS, Turn, vtt_time

from .layout import CaptionFiles
from .layouts import Layout

__all__ = [
    "ass_window",
    "MAX_LINE",
    "MAX_LINES",
    "MIN_SECONDS",
    "MAX_SECONDS",
    "CAPTION_COLOURS",
    "Cue",
    "CaptionBox",
    "clean_text",
    "wrap",
    "chunks",
    "layout_cues",
    "ass_escape",
    "font_face",
    "caption_box",
    "font_size",
    "line_width",
    "MIN_LINE",
    "ass_document",
    "write_ass",
    "webvtt_document",
    "write_webvtt",
    "track_escape",
    "track_segments",
    "track_document",
    "write_track",
    "SUBTITLE_LANGUAGE",
    "burn",
    "track_output_options",
    "MODES",
    "caption_files",
    "laid_out",
]

MODES = ("burn", "track", "off")  # CAPTIONS: on the picture and as a track, as a track only, none
SUBTITLE_LANGUAGE = "eng"  # ISO 639-2, as the MP4 language tag wants it
MAX_LINE = 42
MAX_LINES = 2
MIN_SECONDS = 1.0
MAX_SECONDS = 7.0
ELLIPSIS = "…"
# The sides' waveform colours (panel.WAVE_COLOUR), so a caption's colour says whose panel it belongs to.
CAPTION_COLOURS = {"caller": "9ad0ff", "callee": "f3c4ff"}


@dataclass(frozen=True)
class Cue:
    """One caption on screen: its side, when, and its (at most two) lines."""

    speaker: str
    start: float
    end: float
    lines: tuple[str, ...]


# -- cue layout -------------------------------------------------------------


def clean_text(text: str) -> str:
    """One line of printable text: line breaks and tabs become spaces, control characters go.

    Format characters (Unicode category Cf: the zero-width joiner of an emoji
    sequence, right-to-left marks) stay, since they shape the text.
    """
    kept = (" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join("".join(kept).split())


def _words(text: str, width: int) -> list[str]:
    words: list[str] = []
    for word in text.split(" "):
        words += [word[i : i + width] for i in range(0, len(word), width)]
    return words


def wrap(text: str, width: int = MAX_LINE) -> list[str]:
    """``text`` as the fewest lines of at most ``width`` characters, lines as even as they can be.

    Even lines read better than a full line over a word or two; when two
    splits are as even, the longer line goes at the bottom (the eye finds the
    start of the next cue's first line sooner).
    """
    words = _words(text, width)
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    if len(lines) != 2:
        return lines
    best = lines
    for cut in range(1, len(words)):
        top, bottom = " ".join(words[:cut]), " ".join(words[cut:])
        if len(top) <= width and len(bottom) <= width and (max(len(top), len(bottom)), -len(bottom)) < (max(map(len, best)), -len(best[1])):
            best = [top, bottom]
    # A break after a comma or a sentence's end reads better than the most even one,
    # as long as the shorter line keeps half the longer's length.
    marked = [
        [" ".join(words[:cut]), " ".join(words[cut:])]
        for cut in range(1, len(words))
        if _BREAK_AFTER.search(words[cut - 1])
    ]
    marked = [pair for pair in marked if max(map(len, pair)) <= width and 2 * min(map(len, pair)) >= max(map(len, pair))]
    if marked:
        return min(marked, key=lambda pair: (max(map(len, pair)), -len(pair[1])))
    return best


_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
_CLAUSE_MARK = re.compile(r"[,;:、，；]$")
_BREAK_AFTER = re.compile(r"[,;:.!?…、，；。！？]$")


def _fits(text: str, width: int, lines: int) -> bool:
    return len(wrap(text, width)) <= lines


def _split(sentence: str, width: int, lines: int) -> list[str]:
    """A sentence too long for one cue, cut between words: after a comma when one is in the
    second half of what fits, else where the two last cues come out even."""
    words = _words(sentence, width)
    out: list[str] = []
    while words:
        joined = " ".join(words)
        if _fits(joined, width, lines):
            out.append(joined)
            break
        most = 1
        while most < len(words) and _fits(" ".join(words[: most + 1]), width, lines):
            most += 1
        cut = next((i for i in range(most, (most + 1) // 2, -1) if _CLAUSE_MARK.search(words[i - 1])), None)
        if cut is None:
            cut = most
            if len(joined) <= 2 * width * lines:  # the rest may fit one more cue: share the words evenly
                fitting = [i for i in range(1, most + 1) if _fits(" ".join(words[i:]), width, lines)]
                # After a comma if the two cues can break there, else where they come out even.
                fitting = [i for i in fitting if _CLAUSE_MARK.search(words[i - 1])] or fitting
                if fitting:
                    cut = min(fitting, key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
        out.append(" ".join(words[:cut]))
        words = words[cut:]
    return out


def chunks(text: str, width: int = MAX_LINE, lines: int = MAX_LINES) -> list[str]:
    """``text`` cut into cue texts of at most ``lines`` lines of ``width``: at sentences, then clauses, then words.

    A new sentence starts a new cue when the cue holding the previous one is
    already half full, so a cue rarely ends in the first word of a sentence.
    """
    text = clean_text(text)
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if not sentence:
            continue
        if out and len(out[-1]) < width * lines // 2 and _fits(f"{out[-1]} {sentence}", width, lines):
            out[-1] = f"{out[-1]} {sentence}"
        elif _fits(sentence, width, lines):
            out.append(sentence)
        else:
            out += _split(sentence, width, lines)
    return out


def _shares(weights: Sequence[float], total: float, low: float) -> list[float]:
    """``total`` split in proportion to ``weights``, none below ``low`` (``total`` ≥ ``low`` × count)."""
    shares = [0.0] * len(weights)
    free = list(range(len(weights)))
    remaining = total
    while free:
        weight = sum(weights[i] for i in free)
        small = [i for i in free if remaining * weights[i] / weight < low]
        if not small:
            for i in free:
                shares[i] = remaining * weights[i] / weight
            break
        for i in small:
            shares[i] = low
            free.remove(i)
            remaining -= low
    return shares


def _turn_cues(turn: Turn, limit: float, width: int, lines: int) -> list[Cue]:
    """The cues of one turn, inside ``[turn.start, limit]`` (limit: the side's next turn or the call's end)."""
    texts = chunks(turn.text, width, lines)
    if not texts:
        return []
    end = min(max(turn.end, turn.start + MIN_SECONDS * len(texts)), limit)
    room = max(1, math.floor((end - turn.start) / MIN_SECONDS + 1e-9))
    if len(texts) > room:
        # More words than the time to read them: keep what fits and say so.
        last = texts[room - 1]
        while last and not _fits(last + ELLIPSIS, width, lines):
            last = last[:-1]
        texts = [*texts[: room - 1], last.rstrip() + ELLIPSIS]
    span = end - turn.start
    shares = _shares([len(t) for t in texts], span, min(MIN_SECONDS, span / len(texts)))
    cues, at = [], turn.start
    for text, share in zip(texts, shares, strict=True):
        cues.append(Cue(turn.speaker, round(at, 2), round(min(at + share, at + MAX_SECONDS), 2), tuple(wrap(text, width))))
        at += share
    return [c for c in cues if c.end > c.start]


def layout_cues(turns: Iterable[Turn], duration: float, *, width: int = MAX_LINE, lines: int = MAX_LINES) -> list[Cue]:
    """Every cue of both sides, ordered by start; a side's cues never overlap one another."""
    cues: list[Cue] = []
    for speaker in SPEAKERS:
        own = sorted((t for t in turns if t.speaker == speaker), key=lambda t: t.start)
        cursor = 0.0
        for index, turn in enumerate(own):
            start = max(turn.start, cursor, 0.0)
            end = min(turn.end, duration)
            if end <= start:
                continue
            limit = min([duration] + [t.start for t in own[index + 1 :] if t.start > start])
            laid = _turn_cues(Turn(speaker, start, end, turn.text), limit, width, lines)
            if laid:
                cues += laid
                cursor = laid[-1].end
    return sorted(cues, key=lambda c: (c.start, SPEAKERS.index(c.speaker)))


# -- ASS --------------------------------------------------------------------


def ass_escape(text: str) -> str:
    """Text that libass shows as it is: no override block, no ``\\N``/``\\n``/``\\h`` escape can act.

    ``{`` and ``}`` become libass's literal braces ``\\{`` and ``\\}``. A
    backslash is followed by a WORD JOINER (U+2060, invisible and zero-width),
    so the letter after it is not read as an escape: ``\\N`` shows as the two
    characters, not a line break. Line breaks and control characters are
    gone already (:func:`clean_text`).
    """
    out = []
    for ch in clean_text(text):
        if ch in "{}":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append("\\\u2060")
        else:
            out.append(ch)
    return "".join(out)


def _ass_time(seconds: float) -> str:
    centis = max(0, round(seconds * 100))
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6000)
    return f"{hours}:{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def _ass_colour(rgb: str, alpha: int = 0) -> str:
    """ASS colours are ``&HAABBGGRR`` (alpha 0 is opaque)."""
    return f"&H{alpha:02X}{rgb[4:6]}{rgb[2:4]}{rgb[0:2]}".upper()


def font_face(font: Path | None) -> tuple[str, bool]:
    """The family name and boldness of a TrueType/OpenType font file, read from its ``name`` table.

    libass finds fonts by family name (the ``fontsdir`` given to the filter
    loads the file); LABEL_FONT is a file, so its name is read from it.
    ("DejaVu Sans", False) when there is no readable file: fontconfig's sans.
    """
    fallback = ("DejaVu Sans", False)
    try:
        data = Path(font).read_bytes() if font is not None else b""
        count = struct.unpack(">H", data[4:6])[0]
        tables = {data[12 + 16 * i : 16 + 16 * i]: struct.unpack(">II", data[20 + 16 * i : 28 + 16 * i]) for i in range(count)}
        offset = tables[b"name"][0]
        records, strings = struct.unpack(">HH", data[offset + 2 : offset + 6])
        names: dict[int, str] = {}
        for i in range(records):
            platform, encoding, _, name_id, length, at = struct.unpack(">HHHHHH", data[offset + 6 + 12 * i : offset + 18 + 12 * i])
            raw = data[offset + strings + at : offset + strings + at + length]
            if platform == 3 and encoding in (0, 1) and name_id in (1, 2):
                names.setdefault(name_id, raw.decode("utf-16-be", "replace"))
            elif platform == 1 and encoding == 0 and name_id in (1, 2):
                names.setdefault(name_id, raw.decode("latin-1"))
    except (OSError, struct.error, KeyError, TypeError, ValueError):
        return fallback
    # A comma would end the Fontname field of the Style line.
    family = names.get(1, "").replace(",", " ").strip()
    if not family:
        return fallback
    return family, "bold" in names.get(2, "").lower()


@dataclass(frozen=True)
class CaptionBox:
    """Where one side's captions go, in frame pixels: the strip ``[left, right)``, the bottom line's baseline area.

    ``bottom`` is the lowest row the caption's box may reach, ``top`` the
    highest its two lines may climb to (libass grows a bottom-aligned cue upward).
    """

    left: int
    right: int
    top: int
    bottom: int


def caption_box(speaker: str, placement: Layout) -> CaptionBox:
    """The side's caption region of the layout (:meth:`.layouts.Layout.caption`), inset so the text's box stays inside it.

    Side-by-side, landscape and vertical put it over the lower part of the
    speaker's own panel (clear of the label at the top left and of the
    speaking border); square in the band under the panel.
    """
    region = placement.caption(speaker)
    pad_x = max(8, region.w // 40)
    pad_y = max(4, region.h // 24)
    return CaptionBox(region.x + pad_x, region.x + region.w - pad_x, region.y + pad_y, region.y + region.h - pad_y)


# A line of DejaVu Sans Bold averages about 0.5 em a character (mixed-case
# text with spaces); the line height is about 1.2 em, and the box behind each
# line (BorderStyle 3) adds its outline above and below.
CHAR_EM, LINE_EM = 0.52, 1.25


def font_size(box: CaptionBox, width: int = MAX_LINE, lines: int = MAX_LINES) -> int:
    """The largest size at which ``lines`` lines of ``width`` characters fit the box."""
    across = (box.right - box.left) / (width * CHAR_EM)
    down = (box.bottom - box.top) / (lines * LINE_EM + 0.4)
    return max(10, int(min(across, down)))


# Shortest line a narrow caption region gets: shorter lines make more cues, each on screen for less time.
MIN_LINE = 32


def line_width(placement: Layout) -> int:
    """Characters a caption line holds in this layout: ``MAX_LINE``, or fewer where the region is narrow for its frame.

    A caption should be about as tall as the label (a 24th of the panel's
    height); where ``MAX_LINE`` characters at that size do not fit across the
    region (square's 540-pixel bands, landscape's half frames), the lines get
    shorter rather than the letters smaller, down to ``MIN_LINE``.
    """
    box = caption_box("caller", placement)
    target = placement.caller.h / 24
    fits = int((box.right - box.left) / (CHAR_EM * target))
    return max(MIN_LINE, min(MAX_LINE, fits))


def ass_document(
    cues: Sequence[Cue],
    placement: Layout,
    *,
    font: Path | None = None,
    width: int = MAX_LINE,
) -> str:
    """The ``.ass`` file for ``cues`` on a frame of ``placement``: each side's cues in its caption region, in its colour."""
    family, bold = font_face(font)
    boxes = {speaker: caption_box(speaker, placement) for speaker in SPEAKERS}
    # One size for both sides, so neither speaker looks louder than the other.
    size = min(font_size(box, width) for box in boxes.values())
    out = [
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {placement.width}",
        f"PlayResY: {placement.height}",
        # 0: libass wraps a line only if it is still too wide (a wide font);
        # the lines are ours (\N), cut at MAX_LINE characters.
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: None",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, "
        "ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
    ]
    outline = max(2, size // 6)
    for speaker in SPEAKERS:
        box = boxes[speaker]
        colour = _ass_colour(CAPTION_COLOURS[speaker])
        panel = placement.panel(speaker)
        # Over the panel: bottom centre (alignment 2), a cue growing upward from the region's
        # bottom. In a band under the panel: top centre (8), hanging just under the panel.
        if placement.caption(speaker).y >= panel.y + panel.h:
            alignment, margin_v = 8, box.top + outline
        else:
            alignment, margin_v = 2, placement.height - box.bottom + outline
        # BorderStyle 3: a box behind each line (OutlineColour, 84 % opaque), readable over any
        # picture, the local panel's waveform (the caption's own colour) included.
        out.append(
            f"Style: {speaker},{family},{size},{colour},{colour},{_ass_colour('000000', 0x28)},{_ass_colour('000000', 0x28)},"
            f"{-1 if bold else 0},0,0,0,100,100,0,0,3,{outline},0,{alignment},{box.left + outline},{placement.width - box.right + outline},"
            f"{margin_v},1"
        )
    out += ["", "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"]
    for cue in cues:
        text = "\\N".join(ass_escape(line) for line in cue.lines)
        out.append(f"Dialogue: 0,{_ass_time(cue.start)},{_ass_time(cue.end)},{cue.speaker},,0,0,0,,{text}")
    return "\n".join(out) + "\n"


def write_ass(path: Path, cues: Sequence[Cue], placement: Layout, *, font: Path | None = None, width: int = MAX_LINE) -> Path:
    """Write :func:`ass_document` to ``path`` (UTF-8, as libass reads it)."""
    path.write_text(ass_document(cues, placement, font=font, width=width), encoding="utf-8")
    return path


def _ass_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def ass_window(document: str, start: float, end: float) -> str:
    """``document`` (an :func:`ass_document`) keeping only the cues on screen at some time in ``(start, end)`` seconds.

    libass draws a frame from the cues whose time covers it (each side's cues
    placed by their style in their own region, so no cue moves another), so a
    chunk drawn from this file shows what a whole render draws from the
    whole file (graph.build_chunk_command passes its frames' times, half a
    frame wider either side); and the file is all that a chunk's digest needs
    of the captions (services/compositor/chunks.py): a cue elsewhere in the
    call changing leaves the chunk as it was.
    """
    out = []
    for line in document.splitlines():
        if line.startswith("Dialogue: "):
            _, first, last, _rest = line.split(",", 3)
            if _ass_seconds(last) <= start or _ass_seconds(first) >= end:
                continue
        out.append(line)
    return "\n".join(out) + "\n"


# -- WebVTT (the captions file) and the subtitle track's source ----------------


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt_document(cues: Sequence[Cue], names: dict[str, str] | None = None) -> str:
    """WebVTT of the cues, each with a voice tag naming its side (``<v Caller>``) and its own line breaks."""
    names = {**DEFAULT_NAMES, **(names or {})}
    out = ["WEBVTT", ""]
    for number, cue in enumerate(cues, start=1):
        voice = _vtt_escape(clean_text(names[cue.speaker])) or DEFAULT_NAMES[cue.speaker]
        body = "\n".join(_vtt_escape(clean_text(line)) for line in cue.lines)
        out += [str(number), f"{vtt_time(cue.start)} --> {vtt_time(cue.end)}", f"<v {voice}>{body}</v>", ""]
    return "\n".join(out)


def write_webvtt(path: Path, cues: Sequence[Cue], names: dict[str, str] | None = None) -> Path:
    path.write_text(webvtt_document(cues, names), encoding="utf-8")
    return path


def track_escape(text: str) -> str:
    """Text that FFmpeg's own ASS reader (the subtitle track's path to ``mov_text``) keeps as it is.

    FFmpeg reads every text subtitle as ASS and opens an override block only
    at ``{\\``, a line break only at ``\\N``/``\\n``; a WORD JOINER after
    every ``{`` and backslash breaks each of those pairs. (libass, which
    burns the captions, reads ``{`` alone as a block: :func:`ass_escape` is its rule.)
    """
    return "".join(ch + "\u2060" if ch in "{\\" else ch for ch in clean_text(text))


def track_segments(cues: Sequence[Cue]) -> list[tuple[float, float, list[Cue]]]:
    """The cues cut where any starts or ends: ``(start, end, cues on screen)``, none overlapping.

    A ``mov_text`` track shows one sample at a time, and FFmpeg cuts a cue
    short when the next begins: the two sides talking over each other would
    lose one. Each piece of time gets every cue on screen in it instead.
    """
    edges = sorted({t for c in cues for t in (c.start, c.end)})
    segments = []
    for start, end in itertools.pairwise(edges):
        shown = [c for c in cues if c.start < end and c.end > start]
        if shown:
            segments.append((start, end, sorted(shown, key=lambda c: SPEAKERS.index(c.speaker))))
    return segments


def track_document(cues: Sequence[Cue], names: dict[str, str] | None = None) -> str:
    """The subtitle track's source, an ``.ass`` file FFmpeg muxes as ``mov_text`` (``-c:s mov_text``).

    One event per :func:`track_segments` piece; each side's lines start with
    its name ("Customer: …"), since a text track has no panels to say who speaks.
    """
    names = {**DEFAULT_NAMES, **(names or {})}
    out = [
        "[Script Info]",
        "ScriptType: v4.00+",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, "
        "ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        "Style: Default,Sans,20,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    for start, end, shown in track_segments(cues):
        lines = []
        for cue in shown:
            name = clean_text(names[cue.speaker]) or DEFAULT_NAMES[cue.speaker]
            lines += [f"{name}: {cue.lines[0]}", *cue.lines[1:]]
        text = "\\N".join(track_escape(line) for line in lines)
        out.append(f"Dialogue: 0,{_ass_time(start)},{_ass_time(end)},Default,,0,0,0,,{text}")
    return "\n".join(out) + "\n"


def write_track(path: Path, cues: Sequence[Cue], names: dict[str, str] | None = None) -> Path:
    path.write_text(track_document(cues, names), encoding="utf-8")
    return path


# -- FFmpeg ------------------------------------------------------------------


def burn(stream, ass_file: Path, font: Path | None = None):
    """``stream`` (an ffmpeg-python video stream) with the captions of ``ass_file`` drawn on it.

    The options go by keyword: ffmpeg-python 0.2.0 escapes a keyword's value
    once for the filter's option syntax and once for the graph's, which is
    what FFmpeg reads back; a positional value is escaped twice and a path
    with a quote or colon in it no longer opens. ``fontsdir`` makes libass
    load the label font's folder, so the family named in the styles is
    that file (fontconfig's fonts still back up missing glyphs: emoji, scripts).
    """
    options = {"filename": str(ass_file)}
    if font is not None and Path(font).is_file():
        options["fontsdir"] = str(Path(font).parent)
    return stream.filter("ass", **options)


def track_output_options(language: str = SUBTITLE_LANGUAGE) -> dict[str, str]:
    """Output options that mux the :func:`track_document` input as the MP4's text track (its only subtitle stream)."""
    return {"c:s": "mov_text", "metadata:s:s:0": f"language={language}"}


def caption_files(
    cues: Sequence[Cue],
    mode: str,
    placement: Layout,
    workdir: Path,
    *,
    font: Path | None = None,
    names: dict[str, str] | None = None,
    width: int = MAX_LINE,
) -> CaptionFiles | None:
    """The files a render with these captions reads, written into ``workdir``; None when there is nothing to show.

    ``burn``: the ``.ass`` file for libass and the subtitle track; ``track``:
    the track alone; ``off`` (or no cues): none. ``width``: the cues' line
    length (:func:`line_width`), which sizes the burned letters.
    """
    if mode not in MODES:
        raise ValueError(f"captions must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off" or not cues:
        return None
    burned = write_ass(workdir / "captions.ass", cues, placement, font=font, width=width) if mode == "burn" else None
    return CaptionFiles(burn=burned, track=write_track(workdir / "captions-track.ass", cues, names), language=SUBTITLE_LANGUAGE)


def laid_out(turns: Iterable[Turn], duration: float, placement: Layout) -> list[Cue]:
    """:func:`layout_cues` with this layout's :func:`line_width`."""
    return layout_cues(turns, duration, width=line_width(placement))
