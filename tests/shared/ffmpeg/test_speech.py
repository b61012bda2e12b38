"""Speech intervals from silencedetect's log (unit tests: the parsing and the arithmetic)."""

from __future__ import annotations

from shared.ffmpeg.speech import parse_silences, silencedetect_options, speech_intervals

LOG = """\
[mp3 @ 0x5601] Skipping 0 bytes of junk at 333.
[silencedetect @ 0x5623aca53200] channel: 0 | silence_start: 0
[silencedetect @ 0x5623aca53200] channel: 1 | silence_start: 0
[silencedetect @ 0x5623aca53200] channel: 0 | silence_end: 0.512 | silence_duration: 0.512
[silencedetect @ 0x5623aca53200] channel: 0 | silence_start: 2.048
[silencedetect @ 0x5623aca53200] channel: 1 | silence_end: 2.56 | silence_duration: 2.56
[silencedetect @ 0x5623aca53200] channel: 0 | silence_end: 3.072 | silence_duration: 1.024
[silencedetect @ 0x5623aca53200] channel: 0 | silence_start: 3.712
[silencedetect @ 0x5623aca53200] channel: 1 | silence_start: 4.096
size=       6kB time=00:00:05.04 bitrate=  10.2kbits/s speed= 652x
[silencedetect @ 0x5623aca53200] channel: 1 | silence_end: 5 | silence_duration: 0.904
"""


def test_parse_per_channel():
    left, right = parse_silences(LOG.splitlines())
    assert left == [(0.0, 0.512), (2.048, 3.072), (3.712, None)]
    assert right == [(0.0, 2.56), (4.096, 5.0)]


def test_the_log_lines_of_a_newer_ffmpeg():
    """Newer FFmpeg releases log a filter under its instance's name in the graph."""
    current = LOG.replace("[silencedetect @ 0x5623aca53200]", "[Parsed_silencedetect_4 @ 0x7f6608004400]")
    assert current != LOG
    assert parse_silences(current.splitlines()) == parse_silences(LOG.splitlines())


# Lines from FFmpeg 9.0's logs of a split (imageio-ffmpeg; 43 of 300 runs had one):
# an encoder thread's message came between silencedetect's "channel: N | " and its event.
INTERLEAVED = """\
[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 0 | silence_end: 6.000125 | silence_duration: 0.900125
[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 0 | Encoder thread received EOF
[Parsed_silencedetect_4 @ 0x7fb730004400] silence_start: 6.51
[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 1 | silence_start: 6.51
[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 0 | silence_end: 7.5 | silence_duration: 0.99
[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 1 | Encoder thread received EOF
[Parsed_silencedetect_4 @ 0x7fb730004400] silence_end: 7.5 | silence_duration: 0.99
"""


def test_a_message_from_another_thread_between_channel_and_event():
    before = "[Parsed_silencedetect_4 @ 0x7fb730004400] channel: 0 | silence_start: 5.1\n"
    left, right = parse_silences((before + INTERLEAVED).splitlines())
    assert left == [(5.1, 6.000125), (6.51, 7.5)]
    assert right == [(6.51, 7.5)]


def test_an_event_without_a_channel_is_not_guessed():
    """Each channel token owns one event: a second untagged event is not pinned on the last channel."""
    log = ["[silencedetect @ 0x1] channel: 1 | silence_start: 2", "[silencedetect @ 0x1] silence_start: 3"]
    left, right = parse_silences(log)
    assert (left, right) == ([], [(2.0, None)])


def test_speech_is_what_is_not_silence():
    left, right = parse_silences(LOG.splitlines())
    assert speech_intervals(left, 5.0) == [[0.51, 2.05], [3.07, 3.71]]
    assert speech_intervals(right, 5.0) == [[2.56, 4.1]]


def test_no_silence_is_all_speech_and_all_silence_is_none():
    assert speech_intervals([], 3.25) == [[0.0, 3.25]]
    assert speech_intervals([(0.0, None)], 3.25) == []
    assert speech_intervals([(-0.01, 3.4)], 3.25) == []


def test_short_bursts_are_not_speech():
    silences = [(0.0, 1.0), (1.05, 2.0), (2.5, None)]
    assert speech_intervals(silences, 3.0, min_speech=0.1) == [[2.0, 2.5]]
    assert speech_intervals(silences, 3.0) == [[1.0, 1.05], [2.0, 2.5]]


def test_filter_options():
    assert silencedetect_options(-35.0, 0.5) == {"noise": "-35dB", "duration": "0.5", "mono": 1}
