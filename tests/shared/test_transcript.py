import json

import pytest
import webvtt

from shared.transcript import (
    Transcript,
    TranscriptError,
    Turn,
    parse_transcript,
    sniff_format,
    speaker_names,
    to_json,
    to_webvtt,
)

JSON_TURNS = [
    {"speaker": "caller", "start": 0.5, "end": 4.0, "text": "Hello, this is the assistant."},
    {"speaker": "callee", "start": 4.5, "end": 6.0, "text": "Oh hi."},
]

VTT = """WEBVTT
Kind: captions

NOTE a comment block

intro
00:00:00.500 --> 00:00:04.000 align:start
<v Caller>Hello, <b>this</b> is the assistant.</v>

00:04.500 --> 00:06.000
<v.loud Customer>Oh hi &amp; welcome.
</v>
"""

SRT = """1
00:00:00,500 --> 00:00:04,000
Caller: Hello, <i>this</i> is
the assistant.

2
00:00:04,500 --> 00:00:06,000
[AI agent] Overlap.
Callee: Oh hi.
"""


def problems(data, **kwargs) -> list[str]:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(data, **kwargs)
    return caught.value.problems


def test_formats_are_sniffed_from_content():
    assert sniff_format(json.dumps(JSON_TURNS)) == "json"
    assert sniff_format("\ufeffWEBVTT\n") == "vtt"
    assert sniff_format("1\n00:00:00,000 --> 00:00:01,000\nCaller: hi\n") == "srt"


def test_json_turns_are_read_and_sorted():
    transcript = parse_transcript(json.dumps(list(reversed(JSON_TURNS))), duration=10)
    assert transcript.turns == (
        Turn("caller", 0.5, 4.0, "Hello, this is the assistant."),
        Turn("callee", 4.5, 6.0, "Oh hi."),
    )


def test_webvtt_voices_name_the_side_and_markup_is_dropped():
    transcript = parse_transcript(VTT, duration=10, aliases=speaker_names("AI agent", "Customer"))
    assert transcript.turns == (
        Turn("caller", 0.5, 4.0, "Hello, this is the assistant."),
        Turn("callee", 4.5, 6.0, "Oh hi & welcome."),
    )


def test_srt_speaker_prefix_and_a_second_voice_in_one_cue():
    transcript = parse_transcript(SRT.encode(), duration=10, aliases={"AI agent": "caller"})
    assert transcript.turns == (
        Turn("caller", 0.5, 4.0, "Hello, this is\nthe assistant."),
        Turn("caller", 4.5, 6.0, "Overlap."),
        Turn("callee", 4.5, 6.0, "Oh hi."),
    )


def test_speaker_names_match_case_insensitively():
    data = json.dumps([{"speaker": "CALLEE", "start": 0, "end": 1, "text": "x"}])
    assert parse_transcript(data).turns[0].speaker == "callee"


def test_every_problem_is_reported_at_once():
    data = json.dumps(
        [
            {"speaker": "caller", "start": -1, "end": 2, "text": "a"},
            {"speaker": "robot", "start": 1, "end": 2, "text": "b"},
            {"speaker": "callee", "start": 5, "end": 4, "text": "c"},
            {"speaker": "callee", "start": 8, "end": 30, "text": "d"},
            {"speaker": "caller", "start": "1", "end": 2, "text": "   "},
            "not a turn",
        ]
    )
    found = problems(data, duration=10)
    assert found == [
        "turn 1: start -1 s is before the call",
        "turn 2: unknown speaker 'robot' (caller or callee)",
        "turn 3: end 4 s is not after start 5 s",
        "turn 4: end 30 s is after the end of the call (10 s)",
        "turn 5: start must be a number of seconds",
        "turn 6: must be an object with speaker, start, end, text",
    ]


def test_malformed_files_name_their_lines():
    assert problems('[{"speaker": "caller",\n "start": 1,,}]') == ["line 2: malformed JSON (Expecting property name enclosed in double quotes, column 13)"]
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Robot>hi\n\n00:00:03.000 -> 00:00:04.000\n<v Caller>x\n\n00:00:05.000 --> 00:00:06.000\nno voice\n"
    assert problems(vtt, format="vtt") == [
        "line 4: unknown speaker 'Robot'",
        "line 6: expected a timing line 'start --> end', got '00:00:03.000 -> 00:00:04.000'",
        "line 10: cue has no voice tag naming the speaker (<v Caller>…)",
    ]
    srt = "1\n00:00:01,000 --> 00:00:2,000\nCaller: x\n\n2\n00:00:03,000 --> 00:00:04,000\nhello there\n"
    assert problems(srt) == [
        "line 2: unreadable time in '00:00:01,000 --> 00:00:2,000' (expected HH:MM:SS.mmm)",
        "line 7: cue text must start with the speaker's name ('Caller: …'), got 'hello there'",
    ]
    assert problems("WEBVTT") == ["transcript has no turns"]
    assert problems("NOT VTT", format="vtt") == ["line 1: a WebVTT file must start with 'WEBVTT'"]


def test_empty_oversized_and_binary_files_are_refused_unread():
    assert problems(" \n") == ["transcript is empty"]
    assert problems(b"x" * 101, max_bytes=100) == ["transcript is 101 bytes, over the limit of 100 (TRANSCRIPT_MAX_BYTES)"]
    assert problems(b"WEBVTT\n\n\xff") == ["line 3: not UTF-8 text (byte 8)"]


def test_end_just_past_the_call_is_clamped():
    data = json.dumps([{"speaker": "caller", "start": 9, "end": 10.3, "text": "bye"}])
    assert parse_transcript(data, duration=10).turns[0].end == 10


def test_webvtt_writer_escapes_and_parses_back(tmp_path):
    hostile = "a < b && c > d --> <v Callee>{\\an8}\n\nnew paragraph"
    transcript = Transcript((Turn("caller", 1.0, 2.5, hostile), Turn("callee", 2.0, 3.0, "Übung 🙂 مرحبا")))
    text = to_webvtt(transcript, {"caller": "AI <agent>"})
    assert "<v AI &lt;agent&gt;>a &lt; b &amp;&amp; c &gt; d --&gt; &lt;v Callee&gt;{\\an8} new paragraph</v>" in text
    # Another WebVTT reader agrees on cues, times and text.
    path = tmp_path / "out.vtt"
    path.write_text(text, encoding="utf-8")
    cues = webvtt.read(str(path)).captions
    assert [(c.start, c.end) for c in cues] == [("00:00:01.000", "00:00:02.500"), ("00:00:02.000", "00:00:03.000")]
    assert [c.voice for c in cues] == ["AI &lt;agent&gt;", "Callee"]
    # And so does ours.
    again = parse_transcript(text, aliases={"AI <agent>": "caller"})
    assert again.turns == (Turn("caller", 1.0, 2.5, " ".join(hostile.split())), Turn("callee", 2.0, 3.0, "Übung 🙂 مرحبا"))


def test_json_writer_round_trips():
    transcript = parse_transcript(json.dumps(JSON_TURNS))
    assert parse_transcript(to_json(transcript)) == transcript
