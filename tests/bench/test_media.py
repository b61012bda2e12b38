"""The benchmark's recordings (bench/media.py): variants of one call speak alike and share no audio."""

from __future__ import annotations

import hashlib
import subprocess

from bench import media


def _pcm(path) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "s16le", "-"], check=True, capture_output=True
    ).stdout


def test_variants_speak_the_same_turns_over_different_audio(tmp_path):
    one = media.conversation(12.0, tmp_path, "ours-c1")
    two = media.conversation(12.0, tmp_path, "ours-c2")
    assert one.path != two.path
    # The same speech at the same times: rows of one length measure the same work…
    assert (one.caller_speech, one.callee_speech) == (two.caller_speech, two.callee_speech)
    assert one.caller_speech and one.callee_speech
    # …over a different hiss, so no segment of one has the digest of a segment of the other (generation's cache key).
    first, second = _pcm(one.path), _pcm(two.path)
    rate = media.RATE * 2 * 2  # bytes a second: stereo s16
    start, end = (int(t * rate) // 4 * 4 for t in one.caller_speech[0])
    assert hashlib.sha256(first[start:end]).digest() != hashlib.sha256(second[start:end]).digest()


def test_a_variant_is_made_once_then_read_from_the_cache(tmp_path):
    made = media.conversation(6.0, tmp_path, "burst-1")
    stamp = made.path.stat().st_mtime_ns
    again = media.conversation(6.0, tmp_path, "burst-1")
    assert again == made and again.path.stat().st_mtime_ns == stamp
