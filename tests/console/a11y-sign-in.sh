#!/usr/bin/env bash
# a11y-sign-in.sh: the console's sign-in driven the way a screen reader
# drives it, through AT-SPI (a11y-sign-in.py does the driving).
#
# Runs under with-keyring.sh (a private D-Bus session with an unlocked
# keyring: the console keeps its tokens there) and needs an X display
# (.ci/run provides Xvfb).  This script starts, all on private ground:
#   - an accessibility bus of its own (at-spi-bus-launcher with a private
#     runtime dir and no DISPLAY, so it neither takes the fixed socket
#     path in ~/.cache nor publishes itself on the shared X server);
#   - a relay with one user, on 127.0.0.1 and a port it picks;
#   - the console, with a HOME and XDG dirs of its own, on that relay;
# then runs the driver, which prints TAP, and passes its exit status on.
# Everything started here is stopped, and the temporary dir removed, on
# any exit (failure, timeout, signal).
#
# Environment: FIELDLINE_RELAY, FIELDLINE_CONSOLE (executables),
# GSETTINGS_SCHEMA_DIR (the console's compiled schema), DISPLAY.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
python=/usr/bin/python3
driver="$here/a11y-sign-in.py"

skip() {
  echo "1..0 # SKIP $*"
  exit 0
}

# Debian's python3-pyatspi is for the system Python only.
[ -x "$python" ] || skip "$python is not installed"
"$python" -c 'import pyatspi' >/dev/null 2>&1 || skip "pyatspi is not installed (python3-pyatspi)"
[ -n "${DISPLAY:-}" ] || skip "no X display (run under xvfb-run)"
[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || skip "no D-Bus session (run under with-keyring.sh)"
[ -n "${FIELDLINE_RELAY:-}" ] && [ -x "$FIELDLINE_RELAY" ] || skip "FIELDLINE_RELAY is not an executable"
[ -n "${FIELDLINE_CONSOLE:-}" ] && [ -x "$FIELDLINE_CONSOLE" ] || skip "FIELDLINE_CONSOLE is not an executable"

launcher=""
for f in /usr/share/dbus-1/services/org.a11y.Bus.service /usr/local/share/dbus-1/services/org.a11y.Bus.service; do
  if [ -f "$f" ]; then
    launcher="$(sed -n 's/^Exec=//p' "$f" | head -n 1)"
    break
  fi
done
[ -n "$launcher" ] || skip "at-spi-bus-launcher is not installed (at-spi2-core)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fieldline-a11y-XXXXXX")" || exit 1
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    # give each a moment, then insist
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bail() {
  # TAP: the whole test fails
  echo "Bail out! $*"
  exit 1
}

show_log() {
  [ -s "$1" ] || return 0
  echo "# --- $1 ---"
  sed 's/^/# /' "$1" | tail -n 40
}

mkdir -p "$tmp/runtime" "$tmp/home" "$tmp/config" "$tmp/data" "$tmp/cache" "$tmp/relay"
chmod 700 "$tmp/runtime"

# ---- the accessibility bus ----
env -u DISPLAY -u WAYLAND_DISPLAY -u AT_SPI_BUS_ADDRESS \
  HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp/runtime" \
  $launcher >"$tmp/a11y-bus.log" 2>&1 &
launcher_pid=$!
pids+=($launcher_pid)
# Wait for the name with NameHasOwner: a call to org.a11y.Bus itself
# would have D-Bus start another launcher, with the defaults avoided here.
owned=""
for _ in $(seq 100); do
  if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
       org.freedesktop.DBus.NameHasOwner string:org.a11y.Bus 2>/dev/null | grep -q 'boolean true'; then
    owned=1
    break
  fi
  kill -0 "$launcher_pid" 2>/dev/null || break
  sleep 0.05
done
a11y_addr=""
if [ -n "$owned" ]; then
  owner_pid="$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
                 org.freedesktop.DBus.GetConnectionUnixProcessID string:org.a11y.Bus 2>/dev/null |
               sed -n 's/.*uint32 //p')"
  if [ "$owner_pid" != "$launcher_pid" ]; then
    echo "# org.a11y.Bus belongs to pid ${owner_pid:-?}, not to this test's launcher ($launcher_pid)"
  fi
  a11y_addr="$(dbus-send --session --print-reply=literal --reply-timeout=5000 \
                 --dest=org.a11y.Bus /org/a11y/bus org.a11y.Bus.GetAddress 2>/dev/null | tr -d '[:space:]')"
fi
if [ -z "$a11y_addr" ]; then
  show_log "$tmp/a11y-bus.log"
  bail "the accessibility bus did not start"
fi
# The console (GTK) and the driver (libatspi) both take this first.
export AT_SPI_BUS_ADDRESS="$a11y_addr"

# ---- the relay and its user ----
user=a11y-tester
password='Lab-Secret-42'
if ! printf '%s\n' "$password" | \
     "$FIELDLINE_RELAY" --data-dir "$tmp/relay" users add "$user" \
       --email "$user@lab.invalid" --group admin >"$tmp/users.log" 2>&1; then
  show_log "$tmp/users.log"
  bail "could not create the relay user"
fi
"$FIELDLINE_RELAY" --data-dir "$tmp/relay" --listen 127.0.0.1:0 >"$tmp/relay.out" 2>"$tmp/relay.log" &
relay_pid=$!
pids+=($relay_pid)
url=""
for _ in $(seq 200); do
  url="$(sed -n 's/^listening on //p' "$tmp/relay.out" 2>/dev/null | head -n 1)"
  [ -n "$url" ] && break
  kill -0 "$relay_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$url" ]; then
  show_log "$tmp/relay.log"
  bail "the relay did not start"
fi

# ---- the console ----
# Its own HOME and XDG dirs: no saved connections or settings of the
# user's; plain English names (the driver looks widgets up by name);
# accessibility on (GTK_A11Y unset: AT-SPI).
env -u GTK_A11Y -u LANGUAGE \
  HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" \
  XDG_CACHE_HOME="$tmp/cache" XDG_RUNTIME_DIR="$tmp/runtime" \
  LC_ALL=C.UTF-8 GDK_BACKEND=x11 GSK_RENDERER=cairo GDK_DEBUG=gl-disable \
  FIELDLINE_USER="$user" \
  "$FIELDLINE_CONSOLE" --connect "$url" >"$tmp/console.log" 2>&1 &
console_pid=$!
pids+=($console_pid)

# ---- the driver ----
# Its own deadline is shorter than this one, which is shorter than the
# test's timeout in meson: a hung AT-SPI call still ends in a failure
# with the logs shown.  G_DEBUG is the console's (fatal-criticals), not
# the driver's: a critical inside libatspi should fail a check, not
# abort Python.
# (In the background, so that a signal to this script is handled at once.)
env -u G_DEBUG \
  FIELDLINE_A11Y_PID="$console_pid" FIELDLINE_A11Y_USER="$user" \
  FIELDLINE_A11Y_PASSWORD="$password" \
  timeout --foreground -k 5 100 "$python" "$driver" &
driver_pid=$!
pids+=($driver_pid)
wait "$driver_pid"
status=$?

if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "# the driver did not finish in time (status $status)"
  fi
  if ! kill -0 "$console_pid" 2>/dev/null; then
    wait "$console_pid"
    echo "# the console is not running any more (exit status $?)"
  fi
  show_log "$tmp/console.log"
  show_log "$tmp/relay.log"
  show_log "$tmp/a11y-bus.log"
fi
exit "$status"
