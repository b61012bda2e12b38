"""``make demo``: render the shipped sample call and say where the video is.

The sample (``samples/demo-call.mp3``) is a two-voice conversation made with
espeak-ng, caller on the left channel and callee on the right, 8 kHz like a
Twilio dual-channel recording. It ships with the project, so the demo needs no
download, account or key. Its script ships beside it as a transcript
(``samples/demo-call.transcript.json``), passed as ``--transcript``: the demo
shows captions without any speech-to-text.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import main as cli_main

SAMPLE = Path(__file__).resolve().parent / "samples" / "demo-call.mp3"
TRANSCRIPT = SAMPLE.with_suffix(".transcript.json")


def main() -> int:
    from shared.settings import get_settings

    output = get_settings().data_dir.resolve() / "demo.mp4"
    output.parent.mkdir(parents=True, exist_ok=True)
    print(f"callreel demo: rendering the sample call {SAMPLE.name} (caller left, callee right)…")
    status = cli_main(["render", str(SAMPLE), "-o", str(output), "--transcript", str(TRANSCRIPT)])
    if status == 0:
        print(f"Play it with any video player, e.g. `ffplay {output}`, or open it in a browser.")
    return status


if __name__ == "__main__":
    sys.exit(main())
