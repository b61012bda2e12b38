#!/usr/bin/env bash
# Install Debian packages callreel needs from the system (FFmpeg, DejaVu fonts for the labels, and for tests
# espeak-ng and chromium). Runs apt as root, or through sudo when there is one.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "callreel needs these system packages: $*; install them (apt-get install $*) and run again." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
