#!/usr/bin/env bash
# The FFmpeg the audio and compositor images ship, runnable on this machine:
# Debian's ffmpeg from the images' base suite (deploy/compositor.Dockerfile's
# python:3.11-slim-<suite>), unpacked with debootstrap under DEST/root, with
# ffmpeg and ffprobe wrappers in DEST/bin that load it with its own libraries.
#
#   bash scripts/image-ffmpeg.sh [DEST]     # default .callreel/image-ffmpeg; prints DEST/bin
#   .venv/bin/python bench/run.py --ffmpeg .callreel/image-ffmpeg/bin
#
# Why: a development machine's FFmpeg is not production's (bookworm has 5.1,
# the images 7.1, whose command line runs demuxers, decoders, filters and
# encoders on threads of their own), and the benchmark should measure both.
# Needs root and Debian's mirror; about 300 MB. Run again: nothing is fetched twice.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=$(realpath -m "${1:-$ROOT/.callreel/image-ffmpeg}")
SUITE=$(sed -n 's/^FROM python:3\.11-slim-\([a-z]*\).*/\1/p' "$ROOT/deploy/compositor.Dockerfile" | head -n 1)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -n "$SUITE" ] || { echo "no python:3.11-slim-<suite> base in deploy/compositor.Dockerfile" >&2; exit 1; }

if [ ! -x "$DEST/root/usr/bin/ffmpeg" ]; then
    command -v debootstrap >/dev/null || bash "$ROOT/scripts/install-system-deps.sh" debootstrap
    debootstrap --variant=minbase "$SUITE" "$DEST/root" "$MIRROR" >&2
    chroot "$DEST/root" apt-get install -y --no-install-recommends ffmpeg >&2
fi

# The suite's own loader and library folders, so nothing of this machine's is mixed in.
R="$DEST/root"
loader=""
for candidate in "$R"/lib64/ld-linux-*.so.* "$R"/lib/ld-linux-*.so.*; do
    [ -e "$candidate" ] && { loader=$candidate; break; }
done
[ -n "$loader" ] || { echo "no dynamic loader under $R" >&2; exit 1; }
triple="$(uname -m)-linux-gnu"
libs="$R/usr/lib/$triple:$R/lib/$triple:$R/usr/lib/$triple/pulseaudio"
# Libraries chosen by alternatives (BLAS, LAPACK) are absolute links into
# /etc/alternatives, which would resolve on this machine: their real folders go first.
for link in "$R"/etc/alternatives/*.so*; do
    [ -L "$link" ] || continue
    target=$(readlink "$link")
    case ":$libs:" in *":$R$(dirname "$target"):"*) ;; *) libs="$R$(dirname "$target"):$libs" ;; esac
done
for conf in "$R"/etc/ld.so.conf.d/*.conf; do
    while read -r dir; do
        case "$dir" in /*) libs="$libs:$R$dir" ;; esac
    done < "$conf"
done
mkdir -p "$DEST/bin"
for tool in ffmpeg ffprobe; do
    printf '#!/bin/sh\nexec %q --library-path %q %q "$@"\n' "$loader" "$libs" "$R/usr/bin/$tool" > "$DEST/bin/$tool"
    chmod +x "$DEST/bin/$tool"
done
"$DEST/bin/ffmpeg" -hide_banner -version | head -n 1 >&2
echo "$DEST/bin"
