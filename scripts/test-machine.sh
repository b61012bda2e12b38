#!/usr/bin/env bash
# Make this machine one the test suite runs on: `make test` (and so CI) runs it before pytest.
#
# Idempotent and quick when all is there (no apt, nothing started): the system
# packages the tests use, PostgreSQL on 127.0.0.1:5432, RabbitMQ on 5672 and its
# management API on 15672 (the backlog, the operator page, the e2e harness).
# Runs as root, or through sudo for what needs root; each thing it cannot do
# is one line on stderr and a non-zero exit.
set -uo pipefail
cd "$(dirname "$0")/.."

# The ports, and how long a server gets to answer, can be changed for this script's own test only.
PG_PORT=${TEST_MACHINE_PG_PORT:-5432}
AMQP_PORT=${TEST_MACHINE_AMQP_PORT:-5672}
MANAGEMENT_PORT=${TEST_MACHINE_MANAGEMENT_PORT:-15672}
WAIT=${TEST_MACHINE_WAIT:-60}

fail() { echo "test-machine: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else SUDO=(); fi

# command:package. FFmpeg for every media test, espeak-ng for the voice recordings
# (tests/support/media.py), Chromium for the operator page's browser tests, promtool
# (Debian's prometheus package) to check deploy/prometheus/alerts.yml.
missing=()
for pair in ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng chromium:chromium promtool:prometheus; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
# The compositor's label font: its tests check the labels are drawn.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing+=(fonts-dejavu-core)
# A font for names in Chinese, Japanese and Korean (the label tests draw one).
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
if [ "${#missing[@]}" -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "test-machine: installing ${packages}"
  # shellcheck disable=SC2086 # one word per package
  bash scripts/install-system-deps.sh $packages || fail "cannot install ${packages}(apt-get install ${packages}as root)"
fi

answers() { timeout 2 bash -c ">/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_for() { for _ in $(seq "$2"); do answers "$1" && return 0; sleep 1; done; answers "$1"; }

if ! answers "$PG_PORT"; then
  echo "test-machine: starting PostgreSQL"
  version=$(ls /etc/postgresql 2>/dev/null | head -n1)
  [ -n "$version" ] || fail "PostgreSQL is not installed (apt-get install postgresql)"
  "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1
  wait_for "$PG_PORT" "$WAIT" || fail "PostgreSQL does not answer on 127.0.0.1:$PG_PORT (start it as root: pg_ctlcluster --skip-systemctl-redirect $version main start)"
fi

if ! answers "$AMQP_PORT"; then
  echo "test-machine: starting RabbitMQ"
  command -v rabbitmq-server >/dev/null || fail "RabbitMQ is not installed (apt-get install rabbitmq-server)"
  "${SUDO[@]}" rabbitmq-plugins enable --offline rabbitmq_management >/dev/null 2>&1
  "${SUDO[@]}" rabbitmq-server -detached >/dev/null 2>&1
  wait_for "$AMQP_PORT" "$WAIT" || fail "RabbitMQ does not answer on 127.0.0.1:$AMQP_PORT (start it as root: rabbitmq-server -detached)"
fi

if ! answers "$MANAGEMENT_PORT"; then
  echo "test-machine: enabling RabbitMQ's management API"
  "${SUDO[@]}" rabbitmqctl -q await_startup >/dev/null 2>&1
  "${SUDO[@]}" rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1
  wait_for "$MANAGEMENT_PORT" "$WAIT" || fail "RabbitMQ's management API does not answer on 127.0.0.1:$MANAGEMENT_PORT (as root: rabbitmq-plugins enable rabbitmq_management)"
fi
exit 0
