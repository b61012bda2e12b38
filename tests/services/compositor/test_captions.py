"""Captions: cue layout, the files written, and what real FFmpeg makes of them (pixels, ffprobe, a WebVTT reader)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest
import webvtt

from services.compositor.captions import (
    MAX_LINE,
    MAX_SECONDS,
    MIN_SECONDS,
    Cue,
    ass_document,
    ass_escape,
    burn,
    caption_box,
    chunks,
    font_face,
    layout_cues,
    track_document,
    track_output_options,
    track_segments,
    wrap,
    write_ass,
    write_track,
    write_webvtt,
)
from services.compositor.layouts import side_by_side
from shared.transcript import Turn
from tests.support.media import frame_at, probe

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
PANEL_W, PANEL_H = 640, 480
FRAME = side_by_side(PANEL_W, PANEL_H)
HOSTILE = [
    "It's 50% off: a \\ backslash, a \\N and a \\h",
    "%{pts} %{localtime} %{eif:n:d} [out];[in] scale=2:2, drawtext=text=x",
    "{\\an8}{\\pos(10,10)}{\\c&H0000FF&}moved? {\\fs200}big?",
    "line one\nline two\r\n\nline four\ttabbed\x00\x1b[31m",
    "مرحبا بك في المكالمة ‏and back‎ שלום",
    "emoji 🙂👍🏽 👩‍💻 family 👨‍👩‍👧",
    "x" * 10_000,
    " ".join(["word"] * 2_000),
]


def test_wrap_makes_at_most_two_even_lines():
    text = "Hello, this is the scheduling assistant calling about your appointment."
    lines = wrap(text)
    assert len(lines) == 2 and all(len(line) <= MAX_LINE for line in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 12, lines
    assert " ".join(lines) == text
    assert wrap("a" * 100) == ["a" * 42, "a" * 42, "a" * 16]


def test_chunks_break_at_sentences_then_commas():
    text = "Hello there, this is the assistant calling about your appointment on Thursday. Friday works. Is that right?"
    parts = chunks(text)
    assert parts == [
        "Hello there, this is the assistant calling about your appointment on Thursday.",
        "Friday works. Is that right?",
    ]
    long_sentence = "I can move it to Friday morning at nine, or keep the original time, or call you back next week, whichever suits you best"
    parts = chunks(long_sentence)
    assert parts[0].endswith(",") and all(len(wrap(p)) <= 2 for p in parts)
    assert " ".join(parts) == long_sentence


def test_cues_stay_between_one_and_seven_seconds_inside_the_call():
    turns = [
        Turn("caller", 0.2, 9.0, "Hello, this is the scheduling assistant calling about your appointment on Thursday. "
             "I can move it to Friday morning at nine, or keep the original time. Which would you prefer?"),
        Turn("callee", 0.5, 0.8, "Oh."),  # a blip: still on screen for a second
        Turn("callee", 8.0, 30.0, "Friday."),  # long turn, short text: at most seven seconds
        Turn("caller", 19.5, 20.0, "Great. I will send a confirmation by text message in a moment. Is there anything else?"),
    ]
    cues = layout_cues(turns, duration=20.0)
    for cue in cues:
        assert 0 <= cue.start < cue.end <= 20.0
        assert cue.end - cue.start <= MAX_SECONDS + 1e-9
        assert cue.end - cue.start >= MIN_SECONDS - 1e-9 or cue.end == 20.0, cue
        assert 1 <= len(cue.lines) <= 2 and all(len(line) <= MAX_LINE for line in cue.lines), cue
    callee = [c for c in cues if c.speaker == "callee"]
    assert (callee[0].start, callee[0].end) == (0.5, 1.5)
    assert (callee[1].start, callee[1].end) == (8.0, 8.0 + MAX_SECONDS)
    # Both sides are shown while they talk over each other.
    assert any(c.speaker == "caller" and c.start < 1.0 < c.end for c in cues)
    assert any(c.speaker == "callee" and c.start < 1.0 < c.end for c in cues)
    # A side's cues follow one another without overlapping.
    for side in ("caller", "callee"):
        own = [c for c in cues if c.speaker == side]
        assert all(a.end <= b.start for a, b in zip(own, own[1:]))
    # The last caller turn ends with the call: its text is cut, and says so.
    assert cues[-1].speaker == "caller" and cues[-1].lines[-1].endswith("…")


def test_a_ten_thousand_character_line_is_cut_to_the_time_there_is():
    cues = layout_cues([Turn("caller", 0.0, 5.0, "x" * 10_000)], duration=5.0)
    assert len(cues) == 5 and all(c.end - c.start == pytest.approx(1.0) for c in cues)
    assert cues[-1].lines[-1].endswith("…")
    assert all(len(line) <= MAX_LINE for c in cues for line in c.lines)


def test_ass_escape_leaves_no_markup():
    assert ass_escape("{\\an8}hi") == "\\{\\\u2060an8\\}hi"
    assert ass_escape("a\\Nb\\hc\nd") == "a\\\u2060Nb\\\u2060hc d"
    document = ass_document([Cue("callee", 1, 2, ("{\\pos(1,1)}", "x\\N"))], FRAME)
    dialogue = document.splitlines()[-1]
    assert dialogue == "Dialogue: 0,0:00:01.00,0:00:02.00,callee,,0,0,0,,\\{\\\u2060pos(1,1)\\}\\Nx\\\u2060N"


def test_styles_put_each_side_under_its_own_panel_in_its_font():
    assert font_face(FONT) == ("DejaVu Sans", True)
    assert font_face(Path("/nonexistent.ttf")) == ("DejaVu Sans", False)
    document = ass_document([], FRAME, font=FONT)
    styles = {line.split(",")[0][len("Style: "):]: line.split(",") for line in document.splitlines() if line.startswith("Style: ")}
    caller, callee = caption_box("caller", FRAME), caption_box("callee", FRAME)
    assert caller.right <= PANEL_W <= callee.left
    assert PANEL_H // 2 < caller.top < caller.bottom < PANEL_H
    assert styles["caller"][1] == "DejaVu Sans" and styles["caller"][7] == "-1"
    outline = int(styles["caller"][16])
    assert styles["caller"][19:22] == [str(caller.left + outline), str(2 * PANEL_W - caller.right + outline), str(PANEL_H - caller.bottom + outline)]
    assert styles["callee"][19:22] == [str(callee.left + outline), str(2 * PANEL_W - callee.right + outline), str(PANEL_H - callee.bottom + outline)]
    assert styles["caller"][3] != styles["callee"][3]  # each side its colour


def test_track_segments_keep_both_sides_of_an_overlap():
    cues = [Cue("caller", 0.0, 2.0, ("a",)), Cue("callee", 1.0, 3.0, ("b",))]
    assert [(s, e, [c.speaker for c in shown]) for s, e, shown in track_segments(cues)] == [
        (0.0, 1.0, ["caller"]),
        (1.0, 2.0, ["caller", "callee"]),
        (2.0, 3.0, ["callee"]),
    ]
    assert "Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,AI agent: a\\NCallee: b" in track_document(cues, {"caller": "AI agent"})


# -- real FFmpeg ------------------------------------------------------------------


def _render(tmp_path: Path, ass_file: Path, duration: float = 3.0, name: str = "out.mp4") -> Path:
    """A black two-panel video with the captions burned in, through ffmpeg-python as the compositor builds graphs."""
    video = ffmpeg_python.input(f"color=c=black:s={2 * PANEL_W}x{PANEL_H}:r=10:d={duration}", f="lavfi").video
    output = tmp_path / name
    args = ffmpeg_python.output(burn(video, ass_file, FONT), str(output), vcodec="libx264", preset="ultrafast", crf=10, pix_fmt="yuv420p").overwrite_output().compile()
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return output


def _lit(frame, x0: int, y0: int, x1: int, y1: int) -> int:
    """How many pixels of the box are not black (text or its box), every 2nd pixel."""
    return sum(1 for y in range(y0, y1, 2) for x in range(x0, x1, 2) if max(frame.pixel(x, y)) > 40)


def _areas(frame) -> dict[str, int]:
    half = PANEL_H // 2
    return {
        "caller_bottom": _lit(frame, 0, half, PANEL_W, PANEL_H),
        "callee_bottom": _lit(frame, PANEL_W, half, 2 * PANEL_W, PANEL_H),
        "top": _lit(frame, 0, 0, 2 * PANEL_W, half),
    }


def test_burned_captions_appear_under_the_speakers_panel_only_while_they_speak(tmp_path):
    cues = layout_cues([Turn("callee", 1.0, 2.0, "Friday at nine works better for me, actually.")], duration=3.0)
    ass_file = write_ass(tmp_path / "captions.ass", cues, FRAME, font=FONT)
    video = _render(tmp_path, ass_file)
    silent, speaking = _areas(frame_at(video, 0.5)), _areas(frame_at(video, 1.5))
    assert silent == {"caller_bottom": 0, "callee_bottom": 0, "top": 0}
    assert speaking["callee_bottom"] > 500, speaking
    assert speaking["caller_bottom"] == 0 and speaking["top"] == 0, speaking
    assert _areas(frame_at(video, 2.5)) == silent


def test_both_sides_are_burned_when_they_talk_over_each_other(tmp_path):
    cues = layout_cues([Turn("caller", 0.5, 2.5, "No, wait."), Turn("callee", 1.0, 2.5, "Sorry, go on.")], duration=3.0)
    video = _render(tmp_path, write_ass(tmp_path / "captions.ass", cues, FRAME, font=FONT))
    areas = _areas(frame_at(video, 1.5))
    assert areas["caller_bottom"] > 100 and areas["callee_bottom"] > 100, areas


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:20]))
def test_hostile_text_is_drawn_as_text_where_it_belongs(tmp_path, text):
    cues = layout_cues([Turn("caller", 0.0, 2.0, text)], duration=2.0)
    assert cues
    folder = tmp_path / "it's a [dir]; with, %{odd}: name"  # the ass filter's argument is escaped, not trusted
    folder.mkdir()
    video = _render(tmp_path, write_ass(folder / "captions.ass", cues, FRAME, font=FONT), duration=2.0)
    areas = _areas(frame_at(video, 0.5))
    # Drawn under the caller's panel; no override tag moved it to the top or the other panel.
    assert areas["caller_bottom"] > 200 and areas["top"] == 0 and areas["callee_bottom"] == 0, areas


def test_override_tags_show_as_characters(tmp_path):
    """``{\\an8}`` drawn as text is wider than the same line without it (libass would hide a real tag)."""
    widths = []
    for text in ("Hi {\\an8} there", "Hi there"):
        ass_file = write_ass(tmp_path / "c.ass", [Cue("caller", 0, 2, (text,))], FRAME, font=FONT)
        frame = frame_at(_render(tmp_path, ass_file, duration=2.0, name=f"{len(text)}.mp4"), 0.5)
        columns = [x for x in range(PANEL_W) if any(max(frame.pixel(x, y)) > 40 for y in range(PANEL_H // 2, PANEL_H, 2))]
        widths.append(columns[-1] - columns[0])
    assert widths[0] > widths[1] + 40, widths


def test_subtitle_track_is_mov_text_with_a_language(tmp_path):
    turns = [
        Turn("caller", 0.2, 1.8, "Hello {\\an8} <b>there</b> & you"),
        Turn("callee", 1.0, 2.8, "Hi! مرحبا 🙂"),
    ]
    cues = layout_cues(turns, duration=3.0)
    source = write_track(tmp_path / "track.ass", cues, {"caller": "AI agent", "callee": "Customer"})
    video = ffmpeg_python.input("color=c=black:s=64x64:r=10:d=3", f="lavfi").video
    output = tmp_path / "track.mp4"
    args = ffmpeg_python.output(
        video, ffmpeg_python.input(str(source)), str(output), vcodec="libx264", preset="ultrafast", **track_output_options()
    ).overwrite_output().compile()
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    subtitles = [s for s in probe(output)["streams"] if s["codec_type"] == "subtitle"]
    assert [(s["codec_name"], s["tags"]["language"]) for s in subtitles] == [("mov_text", "eng")]
    # Read back, the track holds the words as written, both sides in the overlap.
    srt = subprocess.run(["ffmpeg", "-v", "error", "-i", str(output), "-map", "0:s", "-f", "srt", "-"], check=True, capture_output=True, text=True).stdout
    plain = srt.replace("\u2060", "")
    assert "AI agent: Hello {\\an8} <b>there</b> & you" in plain
    assert "Customer: Hi! مرحبا 🙂" in plain
    assert "00:00:01,000 --> 00:00:01,800" in srt


def test_webvtt_file_parses_and_its_cues_lie_inside_the_call(tmp_path):
    turns = [Turn("caller", 0.0, 4.0, HOSTILE[0] + " " + HOSTILE[2]), Turn("callee", 3.0, 6.0, "a < b > c & d --> e")]
    cues = layout_cues(turns, duration=6.0)
    path = write_webvtt(tmp_path / "call.vtt", cues, {"caller": "AI agent", "callee": "Customer"})
    captions = webvtt.read(str(path)).captions
    assert len(captions) == len(cues)
    for caption, cue in zip(captions, cues):
        assert 0 <= caption.start_in_seconds <= caption.end_in_seconds <= 6
        assert caption.voice == {"caller": "AI agent", "callee": "Customer"}[cue.speaker]
    assert "a &lt; b &gt; c &amp; d --&gt; e" in path.read_text()
