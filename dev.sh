#!/usr/bin/env bash
# LiveCart's two commands:
#   ./dev.sh demo   install into .venv and start the server with a live demo stream
#   ./dev.sh test   install everything the tests need into .venv and run the whole suite
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LIVECART_VENV:-.venv}"
PY="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "dev.sh: need root (or sudo) to run: $*" >&2; exit 1; fi; }

gst_ok() {
  /usr/bin/python3 -c "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0')
from gi.repository import Gst; Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ('webrtcbin', 'vp8enc', 'nicesrc', 'opusenc'))" 2>/dev/null
}

ensure_venv() {
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dev.sh: LiveCart needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
      # Debian/Ubuntu ship venv separately.
      rm -rf "$VENV"
      as_root apt-get update -qq
      as_root apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv "$VENV"
    fi
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
}

ensure_compiler() {
  # The fan-out's send loop in C (relay/media/_sendloop.c) is built by pip where a C compiler and
  # the Python headers are found; without them LiveCart runs its Python loop (slower, same bytes).
  local include
  include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if ! command -v cc >/dev/null || [ ! -f "$include/Python.h" ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev python3-dev >/dev/null
  fi
}

case "${1:-}" in
  demo)
    shift
    ensure_venv
    ensure_compiler
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check .
    exec "$VENV/bin/livecart" serve --demo "$@"
    ;;
  test)
    shift
    ensure_venv
    ensure_compiler
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    missing=()
    # Browser tests use Debian's Chromium (never a browser download); the lossy-link test builds a
    # network namespace (iproute2) and drops packets in it (nftables); interop tests use Node.js;
    # cluster tests use Debian's redis-server.
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v nft >/dev/null || missing+=(nftables)
    command -v npm >/dev/null || missing+=(nodejs npm)  # werift and libwebrtc (npm) interop peers
    # Cluster tests start their own Redis on 127.0.0.1 (a free port, nothing on disk) and stop it.
    command -v redis-server >/dev/null || missing+=(redis-server)
    # GStreamer's webrtcbin, driven from the system Python, is another interop publisher.
    gst_ok || missing+=(python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-bad
                        gstreamer1.0-plugins-good gstreamer1.0-plugins-base gstreamer1.0-nice)
    if [ "${#missing[@]}" -gt 0 ]; then
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error >/dev/null
    echo "== ruff"; "$VENV/bin/ruff" check ingest transcode relay benchmarks tests
    echo "== mypy"; "$VENV/bin/mypy"
    echo "== import contracts"; "$VENV/bin/lint-imports" --no-cache | sed -n '/^Contracts/,$p'
    echo "== pytest"; exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [livecart serve options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
