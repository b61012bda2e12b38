"""A long call's video rendered in time chunks by any compositor replica, then joined without re-encoding.

One FFmpeg run renders a call on about two cores at a few times real time,
however many compositor replicas are idle. So a call at least
``CHUNKED_FROM`` × COMPOSE_CHUNK_SECONDS long is cut into chunks of about
COMPOSE_CHUNK_SECONDS (moved to a segment boundary when one is near: fewer
clips are decoded twice), and each chunk is a ``ComposeChunk`` row and a
``compose_chunk`` message that any replica may take::

    compose (coordinator, holds the call's lock)        compose_chunk (any replica)
      plan the chunks, rows + messages ──────────────▶  claim a pending chunk
      render the sound track: one pass, whole call       render its frames, upload, done
      claim and render chunks itself too                  (a chunk rendered, or claimed, is skipped)
      wait for the rest, download, join (-c copy) ◀─────

Why it is seamless:

- every chunk is encoded with the same x264 settings, opens with an IDR frame
  and has closed GOPs, so the concat demuxer joins the streams as they are;
- a chunk's frames come from the same graph as a whole render's, timed on the
  call's clock (the highlight's and the burned captions' times are the call's;
  the local panel's waveform is cut at whole frames of its audio);
- the sound is not chunked at all: one pass over the whole call (the mix's
  two-pass loudness included) is muxed at the join, so it is
  sample-for-sample what a whole render's is (tests/services/compositor/test_chunks.py).

A call still in generation has its chunks (and sound track) rendered as
their inputs are stored (:mod:`.early`); every chunk's row carries its own
digest, so the coordinator joins those rendered early that its own spec
would render alike and renders the others again.

Short calls keep the single pass: below three chunks' length the messages,
uploads and the join cost more than a second worker saves, and the single
pass has fallbacks of its own (a render without captions). Any chunk
failing falls back to the single pass too: chunking is a way to be fast,
never a new way to fail.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from shared import keys, owners
from shared.compose_chunks import CHUNKED_FROM, ChunkState, ComposeChunk
from shared.compose_chunks import chunked as chunked_length
from shared.contracts import COMPOSE_CHUNK, send
from shared.ffmpeg import FFmpegError, FFmpegKilled, file_url
from shared.models import utcnow
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage

from .graph import AUDIO_OPTIONS, AUDIO_RATE, Window, build_audio_command, build_chunk_command
from .layout import RenderSpec, frame_at, total_frames
from .mix import plan as plan_mix
from .runner import run_ffmpeg

__all__ = [
    "CHUNKED_FROM", "ChunkedFailed", "plan_windows", "chunk_digest", "chunk_digests", "chunked", "ensure_rows", "claim",
    "settle_row", "render_chunk", "render_claimed", "release", "SOUND", "sound_digest", "render_sound", "stored_sound",
    "dispatch", "coordinate", "reclaim_dead", "join", "forget",
]

log = logging.getLogger("callreel.compositor")

#: The row index of the call's sound track when it is rendered early (chunks are 0, 1, …).
SOUND = -1
#: A chunk boundary moves to a segment boundary at most this share of a chunk away.
SNAP = 0.25
#: Seconds between two looks at the chunks other replicas render.
WAIT_STEP = 0.25


class ChunkedFailed(RuntimeError):
    """The chunked render cannot finish: the caller renders the call in one pass instead."""


def chunked(duration: float, settings: Settings) -> bool:
    return chunked_length(duration, settings.compose_chunk_seconds)


def plan_windows(duration: float, fps: int, chunk_seconds: float, boundaries: Sequence[float] = ()) -> list[Window]:
    """Frames ``[first, last)`` of each chunk: about ``chunk_seconds`` each, cut at a segment boundary when one is near."""
    total = total_frames(duration, fps)
    count = max(1, round(duration / chunk_seconds))
    step = total / count
    cuts, cursor = [], 0
    bounds = sorted({frame_at(b, fps) for b in boundaries if 0 < b < duration})
    for n in range(1, count):
        target = round(n * step)
        near = [b for b in bounds if abs(b - target) <= SNAP * step and b > cursor]
        cut = min(near, key=lambda b: abs(b - target)) if near else target
        if cut <= cursor or cut >= total:
            continue
        cuts.append(cut)
        cursor = cut
    edges = [0, *cuts, total]
    return list(zip(edges, edges[1:], strict=False))


def chunk_digest(spec: RenderSpec, window: Window, settings: Settings, hashes: dict[Path, bytes] | None = None) -> str:
    """What one chunk's frames are made of, as a digest: its command (the temp folder left out) and every file it reads.

    The chunk command holds only the window's pieces (the clips shown in it,
    named by their segment, the idle avatar, the labels, the cues around it:
    graph.build_chunk_command), so the digest changes exactly when something
    the chunk shows changes. A chunk rendered early, from a call still in
    generation, is joined only when its digest is the final spec's; one of
    another digest (another panel shape, a side turned local panel, other
    captions) is rendered again. ``hashes``: file digests already computed
    for this spec (a segment video is read once for all its chunks).
    """
    command = build_chunk_command(spec, window, spec.workdir / "digest.mp4", binary=settings.ffmpeg_binary)
    root = str(spec.workdir)
    text = "\0".join(command)
    digest = hashlib.sha256(text.replace(root, "").encode())
    graphs = [Path(arg) for arg in command if arg.startswith(root) and arg.endswith(".txt")]
    for graph in graphs:  # a long call's graph is in a file the command names: its text counts too
        text += graph.read_text(encoding="utf-8")
    for path in sorted({Path(match) for match in re.findall(re.escape(root) + r"/[A-Za-z0-9._-]+", text)} - set(graphs)):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + _file_digest(path, hashes))
    return digest.hexdigest()[:32]


def _file_digest(path: Path, hashes: dict[Path, bytes] | None) -> bytes:
    if hashes is not None and path in hashes:
        return hashes[path]
    with path.open("rb") as f:
        value = hashlib.file_digest(f, "sha256").digest()
    if hashes is not None and (path.suffix in (".mp4", ".mp3") or path.name.startswith("avatar-")):
        hashes[path] = value  # the big inputs, written once; label and caption files are rewritten per chunk
    return value


def chunk_digests(spec: RenderSpec, windows: Sequence[Window], settings: Settings) -> list[str]:
    hashes: dict[Path, bytes] = {}
    return [chunk_digest(spec, window, settings, hashes) for window in windows]


def _reset(row: ComposeChunk, window: Window, digest: str, storage: Storage | None) -> bool:
    """Make ``row`` a pending chunk of ``window`` with ``digest`` (unless it changed meanwhile); its old video goes."""
    now = utcnow()
    changed = bool(
        ComposeChunk.update(
            {
                ComposeChunk.plan: digest, ComposeChunk.first_frame: window[0], ComposeChunk.last_frame: window[1],
                ComposeChunk.state: ChunkState.PENDING, ComposeChunk.owner: None, ComposeChunk.video_key: None,
                ComposeChunk.attempts: 0, ComposeChunk.error: None, ComposeChunk.claimed_at: None,
                ComposeChunk.finished_at: None, ComposeChunk.updated_at: now,
            }
        )
        .where((ComposeChunk.id == row.id) & (ComposeChunk.plan == row.plan) & (ComposeChunk.state == row.state))
        .execute()
    )
    if changed and row.video_key and storage is not None:
        _delete(row.call_id, row.video_key, storage)
    return changed


def _delete(call_id: str, key: str, storage: Storage) -> None:
    try:
        storage.delete(key)
    except Exception as exc:  # a leftover chunk costs a little storage, never the call
        log.warning("chunk video %s not removed: %s", key, exc, extra={"call_id": call_id})


def settle_row(call_id: str, index: int, window: Window, digest: str, storage: Storage | None, *, early: bool) -> ComposeChunk | None:
    """The chunk row of ``index`` for ``window`` and ``digest``: kept when it is that chunk (done, pending, rendering), else reset.

    ``early`` (a chunk rendered while the call is in generation): a row done
    or rendering is never taken from its renderer, and a failed one of the
    same digest stays failed; the coordinator settles them (a failed chunk
    gets one fresh try there). None: the row is not this chunk and stays as
    it is, or it changed under us.
    """
    fresh = {"call_id": call_id, "index": index, "plan": digest, "first_frame": window[0], "last_frame": window[1]}
    ComposeChunk.insert(**fresh).on_conflict_ignore().execute()
    row = ComposeChunk.get((ComposeChunk.call_id == call_id) & (ComposeChunk.index == index))
    same = (row.first_frame, row.last_frame, row.plan) == (window[0], window[1], digest)
    if same and (row.state != ChunkState.FAILED or early):
        return row
    if early and row.state in (ChunkState.DONE, ChunkState.RENDERING):
        return None
    if not _reset(row, window, digest, storage):
        return None
    return ComposeChunk.get_by_id(row.id)


def ensure_rows(call_id: str, windows: Sequence[Window], digests: Sequence[str], storage: Storage | None = None) -> list[ComposeChunk]:
    """The call's chunk rows for these windows and digests; a message is sent for each chunk not done.

    A row already done with its window's digest (rendered early, or before a
    retry) is kept and joined as it is; any other row is pending again with
    the new digest, its old video removed.
    """
    for _ in range(3):  # a row an early render finishes meanwhile: settle it again
        for row in ComposeChunk.select().where((ComposeChunk.call_id == call_id) & (ComposeChunk.index >= len(windows))):
            if row.video_key and storage is not None:
                _delete(call_id, row.video_key, storage)
            ComposeChunk.delete().where(ComposeChunk.id == row.id).execute()
        settled = [settle_row(call_id, index, window, digest, storage, early=False)
                   for index, (window, digest) in enumerate(zip(windows, digests, strict=True))]
        if all(row is not None for row in settled):
            break
    rows = list(ComposeChunk.select().where((ComposeChunk.call_id == call_id) & (ComposeChunk.index >= 0)).order_by(ComposeChunk.index))
    if [(r.first_frame, r.last_frame, r.plan) for r in rows] != [(*w, d) for w, d in zip(windows, digests, strict=True)]:
        raise ChunkedFailed("the call's chunk rows do not match the plan")
    for row in rows:
        if row.state != ChunkState.DONE:
            send(COMPOSE_CHUNK, call_id=call_id, index=row.index, plan=row.plan)
    return rows


def claim(row: ComposeChunk, settings: Settings) -> bool:
    """Take a pending chunk (or one whose renderer has been silent past COMPOSE_TIMEOUT): True for the one that got it."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.compose_timeout)
    return bool(
        ComposeChunk.update(
            {
                ComposeChunk.state: ChunkState.RENDERING,
                ComposeChunk.owner: owners.me().tag,
                ComposeChunk.claimed_at: now,
                ComposeChunk.attempts: ComposeChunk.attempts + 1,
                ComposeChunk.updated_at: now,
            }
        )
        .where(
            (ComposeChunk.id == row.id)
            & (ComposeChunk.plan == row.plan)
            & (
                (ComposeChunk.state == ChunkState.PENDING)
                | ((ComposeChunk.state == ChunkState.RENDERING) & (ComposeChunk.claimed_at < stale))
            )
        )
        .execute()
    )


def render_chunk(spec: RenderSpec, window: Window, output: Path, settings: Settings, extra: dict[str, str]) -> None:
    first, last = window
    run_ffmpeg(
        build_chunk_command(spec, window, output, binary=settings.ffmpeg_binary),
        timeout=settings.compose_timeout,
        what=f"chunk {first}-{last}",
        total_seconds=(last - first) / spec.fps,
        log_extra=extra,
    )


def render_claimed(row: ComposeChunk, spec: RenderSpec, settings: Settings, storage: Storage, extra: dict[str, str]) -> Path:
    """Render a chunk this process has claimed, store it and mark it done; a failure marks it failed and re-raises.

    FFmpeg killed from outside (the OOM killer) is not the chunk's fault: it is given back, for any replica to take.
    """
    output = spec.workdir / f"chunk-{row.index:04d}.mp4"
    try:
        render_chunk(spec, (row.first_frame, row.last_frame), output, settings, extra)
        key = keys.chunk_video_key(row.call_id, row.plan, row.index)
        storage.upload_file(output, key, content_type="video/mp4")
    except FFmpegKilled:
        release(row)
        raise
    except Exception as exc:
        _mark(row, ChunkState.FAILED, error=str(exc)[:4000])
        raise
    if not _mark(row, ChunkState.DONE, video_key=key):
        _delete(row.call_id, key, storage)  # the coordinator reset the chunk meanwhile (other inputs): this video is nobody's
    return output


def _gone(tag: str | None) -> bool:
    """Whether the process of an owner tag (``host.pid.start``) is known to have ended (one on another host is not known)."""
    try:
        host, pid, start = (tag or "").split(".")
        return owners.alive(owners.Owner(host, int(pid), int(start))) is False
    except ValueError:
        return False


def reclaim_dead(rows: Sequence[ComposeChunk]) -> None:
    """Chunks whose renderer died on this host (a killed worker) are pending again at once, not after COMPOSE_TIMEOUT."""
    for row in rows:
        if row.state == ChunkState.RENDERING and _gone(row.owner):
            pending = {ComposeChunk.state: ChunkState.PENDING, ComposeChunk.owner: None, ComposeChunk.updated_at: utcnow()}
            ComposeChunk.update(pending).where(
                (ComposeChunk.id == row.id) & (ComposeChunk.state == ChunkState.RENDERING) & (ComposeChunk.owner == row.owner)
            ).execute()
            log.info("chunk %d: its renderer is gone; pending again", row.index, extra={"call_id": row.call_id})


def release(row: ComposeChunk) -> None:
    """Give a claimed chunk back (this process cannot render it as planned): the coordinator or another replica takes it."""
    ComposeChunk.update({ComposeChunk.state: ChunkState.PENDING, ComposeChunk.owner: None, ComposeChunk.updated_at: utcnow()}).where(
        (ComposeChunk.id == row.id) & (ComposeChunk.state == ChunkState.RENDERING) & (ComposeChunk.owner == owners.me().tag)
    ).execute()


def _mark(row: ComposeChunk, state: str, **columns: object) -> bool:
    now = utcnow()
    return bool(ComposeChunk.update({"state": state, "updated_at": now, "finished_at": now, **columns}).where(
        (ComposeChunk.id == row.id) & (ComposeChunk.plan == row.plan) & (ComposeChunk.owner == owners.me().tag)
        & (ComposeChunk.state == ChunkState.RENDERING)
    ).execute())


def dispatch(
    call_id: str, spec: RenderSpec, boundaries: Sequence[float], settings: Settings, storage: Storage, extra: dict[str, str]
) -> tuple[list[str], list[Window]]:
    """Plan the chunks of ``spec`` and offer the ones not done to every replica: each chunk's digest and frames."""
    windows = plan_windows(spec.duration, spec.fps, settings.compose_chunk_seconds, boundaries)
    digests = chunk_digests(spec, windows, settings)
    rows = ensure_rows(call_id, windows, digests, storage)
    done = sum(1 for r in rows if r.state == ChunkState.DONE)
    log.info("rendering in %d chunks of about %g s (%d rendered early)", len(rows), settings.compose_chunk_seconds, done, extra=extra)
    return digests, windows


def coordinate(
    call_id: str, spec: RenderSpec, digests: Sequence[str], windows: Sequence[Window], output: Path,
    settings: Settings, storage: Storage, extra: dict[str, str], sound: Path | None = None,
) -> None:
    """The rest of a chunked render of ``spec`` into ``output`` (:func:`dispatch` done): the sound, chunks here and elsewhere, the join.

    Raises ChunkedFailed (the caller renders in one pass) when a chunk fails or the rest take longer than COMPOSE_TIMEOUT.
    """
    audio = spec.workdir / "sound.m4a"
    if sound is not None:
        audio = sound  # rendered early, from the same recording and mix settings
    else:
        command = build_audio_command(spec, audio, binary=settings.ffmpeg_binary)
        run_ffmpeg(command, timeout=settings.compose_timeout, what="sound track", log_extra=extra)
    local: dict[int, Path] = {}
    deadline = time.monotonic() + settings.compose_timeout
    while True:
        current = {r.index: r for r in ComposeChunk.select().where((ComposeChunk.call_id == call_id) & (ComposeChunk.index >= 0))}
        if [(current[i].plan if i in current else None) for i in range(len(windows))] != list(digests) or len(current) != len(windows):
            raise ChunkedFailed("the call's chunk rows changed during the render")
        failed = [r for r in current.values() if r.state == ChunkState.FAILED]
        if failed:
            raise ChunkedFailed(f"chunk {failed[0].index} failed: {failed[0].error}")
        if all(r.state == ChunkState.DONE for r in current.values()):
            break
        reclaim_dead(list(current.values()))
        mine = next((r for r in current.values() if r.state != ChunkState.DONE and claim(r, settings)), None)
        if mine is not None:
            try:
                local[mine.index] = render_claimed(mine, spec, settings, storage, extra)
            except FFmpegError as exc:
                raise ChunkedFailed(f"chunk {mine.index} failed: {exc}") from exc
            continue
        if time.monotonic() > deadline:
            raise ChunkedFailed("the chunks other replicas render took longer than COMPOSE_TIMEOUT")
        time.sleep(WAIT_STEP)
    parts = []
    for index in range(len(windows)):
        path = local.get(index) or spec.workdir / f"chunk-{index:04d}.mp4"
        if index not in local:
            try:
                storage.download_file(current[index].video_key or "", path)
            except ObjectNotFound:
                raise ChunkedFailed(f"chunk {index}'s video {current[index].video_key} is missing") from None
        parts.append(path)
    join(parts, audio, spec, output, settings, extra)
    log.info("chunks joined: %d rendered here, %d by other replicas or early", len(local), len(windows) - len(local), extra=extra)


def sound_digest(settings: Settings, recording: Path) -> str:
    """What the call's one-pass sound track is made of, known without measuring it: the recording and the mix settings.

    The mix's loudness is measured from these alone (:mod:`.mix`), so two
    renders with the same digest make the same sound track, sample for sample.
    """
    digest = hashlib.sha256(_file_digest(recording, None))
    mix = (settings.audio_mix, settings.audio_pan, settings.caller_channel, settings.audio_loudness, settings.audio_true_peak)
    digest.update(repr((mix, AUDIO_RATE, sorted(AUDIO_OPTIONS.items()), settings.ffmpeg_binary)).encode())
    return digest.hexdigest()[:32]


def render_sound(call_id: str, spec: RenderSpec, settings: Settings, storage: Storage, extra: dict[str, str]) -> bool:
    """Render, store and record the call's sound track while it is still in generation (a row of index SOUND); True if done here.

    Redelivered or duplicated, it renders nothing twice (the same claim as a
    chunk's); a failure is the row's (the compose renders the sound itself).
    """
    digest = sound_digest(settings, spec.recording)
    row = settle_row(call_id, SOUND, (0, 0), digest, storage, early=True)
    if row is None or row.state != ChunkState.PENDING or not claim(row, settings):
        return False
    output, key = spec.workdir / "sound-early.m4a", keys.chunk_sound_key(call_id, digest)
    try:
        mixed = replace(spec, mix=plan_mix(settings, spec.recording, AUDIO_RATE))
        run_ffmpeg(build_audio_command(mixed, output, binary=settings.ffmpeg_binary), timeout=settings.compose_timeout,
                   what="sound track", log_extra=extra)
        storage.upload_file(output, key, content_type="audio/mp4")
    except FFmpegKilled:
        release(row)
        raise
    except Exception as exc:
        _mark(row, ChunkState.FAILED, error=str(exc)[:4000])
        log.warning("early sound track failed: %s", exc, extra=extra)
        return False
    if not _mark(row, ChunkState.DONE, video_key=key):
        _delete(call_id, key, storage)
        return False
    return True


def stored_sound(call_id: str, digest: str, storage: Storage, target: Path) -> Path | None:
    """The call's sound track rendered early with this digest, fetched into ``target``; None: there is none."""
    mine = (ComposeChunk.call_id == call_id) & (ComposeChunk.index == SOUND)
    row = ComposeChunk.get_or_none(mine & (ComposeChunk.plan == digest) & (ComposeChunk.state == ChunkState.DONE))
    if row is None or not row.video_key:
        return None
    try:
        storage.download_file(row.video_key, target)
    except ObjectNotFound:
        return None
    return target


def join(parts: Sequence[Path], audio: Path, spec: RenderSpec, output: Path, settings: Settings, extra: dict[str, str]) -> None:
    """The chunks' video streams one after another, the sound track and the captions track beside them: nothing re-encoded."""
    listing = spec.workdir / "chunks.txt"
    # Our own listing of files we rendered or downloaded; it names nothing but files.
    listing.write_text("".join(f"file '{file_url(p)}'\n" for p in parts))
    args = [settings.ffmpeg_binary, "-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", file_url(listing), "-i", str(audio)]
    maps = ["-map", "0:v", "-map", "1:a"]
    codecs = ["-c", "copy"]
    if spec.captions is not None:
        args += ["-i", str(spec.captions.track)]
        maps += ["-map", "2:s"]
        codecs += ["-c:s", "mov_text", "-metadata:s:s:0", f"language={spec.captions.language}"]
    run_ffmpeg(
        [*args, *maps, *codecs, "-movflags", "+faststart", "-y", str(output)],
        timeout=settings.compose_timeout,
        what="join chunks",
        log_extra=extra,
    )


def forget(call_id: str, storage: Storage) -> None:
    """The video is stored: the call's chunk videos and rows go (a re-render plans afresh)."""
    for row in ComposeChunk.select().where(ComposeChunk.call_id == call_id):
        if row.video_key:
            _delete(call_id, row.video_key, storage)
    ComposeChunk.delete().where(ComposeChunk.call_id == call_id).execute()
