#!/bin/sh
# with-keyring.sh COMMAND...: runs COMMAND against a real, unlocked
# gnome-keyring-daemon of its own, on a private D-Bus session of its own
# (so it never meets another keyring).  The daemon's files live in a
# temporary directory, which COMMAND finds in FIELDLINE_TEST_KEYRING_DIR,
# and which is removed after.
set -eu

if [ -z "${FIELDLINE_KEYRING_BUS:-}" ]; then
  FIELDLINE_KEYRING_BUS=1
  export FIELDLINE_KEYRING_BUS
  exec dbus-run-session -- "$0" "$@"
fi

if ! command -v gnome-keyring-daemon >/dev/null 2>&1; then
  # TAP: a skipped test plan, not a failure
  echo "1..0 # SKIP gnome-keyring-daemon is not installed"
  exit 0
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/fieldline-keyring-XXXXXX")"
mkdir -p "$dir/home" "$dir/runtime" "$dir/data"
chmod 700 "$dir/runtime"

pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# The daemon takes the password on stdin and creates an unlocked login
# keyring, so no prompter is needed.
printf '%s' "fieldline-test-password" | \
  HOME="$dir/home" XDG_RUNTIME_DIR="$dir/runtime" XDG_DATA_HOME="$dir/data" \
  gnome-keyring-daemon --foreground --unlock --components=secrets >"$dir/daemon.log" 2>&1 &
pid=$!

# Wait until the daemon owns org.freedesktop.secrets on this bus.
i=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "gnome-keyring-daemon did not start:" >&2
    cat "$dir/daemon.log" >&2
    exit 1
  fi
  sleep 0.1
done

FIELDLINE_TEST_KEYRING_DIR="$dir" "$@"
