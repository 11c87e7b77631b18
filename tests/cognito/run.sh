#!/usr/bin/env bash
# Runs verify.mjs (standard Cognito clients) against a fresh fieldline-relay.
#
# Usage: run.sh [PATH-TO-fieldline-relay]   (or FIELDLINE_RELAY in the environment)
#
# Prints TAP.  Without Node.js, or without node_modules when `npm ci` cannot
# install them (offline), prints "1..0 # SKIP reason" and exits 0.

set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
relay=${1:-${FIELDLINE_RELAY:-}}

skip() {
  echo "1..0 # SKIP $*"
  exit 0
}

bail() {
  echo "Bail out! $*"
  exit 1
}

[ -n "$relay" ] || bail "no relay: pass its path as \$1 or set FIELDLINE_RELAY"
[ -x "$relay" ] || bail "the relay $relay is not an executable"
case $relay in /*) ;; *) relay=$PWD/$relay ;; esac

command -v node >/dev/null 2>&1 || skip "node (Node.js) is not installed"

if [ ! -d "$here/node_modules/@aws-sdk/client-cognito-identity-provider" ] ||
   [ ! -d "$here/node_modules/amazon-cognito-identity-js" ]; then
  command -v npm >/dev/null 2>&1 || skip "node_modules is missing and npm is not installed"
  # npm's chatter goes to stderr: stdout is TAP
  if ! (cd "$here" && npm ci --no-audit --no-fund >&2); then
    skip "node_modules is missing and 'npm ci' failed (offline?)"
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fieldline-cognito.XXXXXX") || bail "mktemp failed"
relay_pid=

cleanup() {
  if [ -n "$relay_pid" ]; then
    kill "$relay_pid" 2>/dev/null
    wait "$relay_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkfifo "$work/stdout" || bail "mkfifo failed"
"$relay" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/stderr" &
relay_pid=$!

# The three lines, in order; the relay keeps stdout open afterwards.
exec 3<"$work/stdout"
url= pool= client=
for _ in 1 2 3; do
  if ! IFS= read -r -t 30 line <&3; then
    echo "# relay stderr:"; sed 's/^/#   /' "$work/stderr"
    bail "the relay did not print its address, user pool and app client"
  fi
  case $line in
    "listening on "*) url=${line#listening on } ;;
    "user pool: "*) pool=${line#user pool: } ;;
    "app client: "*) client=${line#app client: } ;;
    *) bail "unexpected line from the relay: $line" ;;
  esac
done
# Keep draining stdout so the relay never blocks on a full pipe.
cat <&3 >/dev/null &
exec 3<&-

[ -n "$url" ] && [ -n "$pool" ] && [ -n "$client" ] ||
  bail "missing url ($url), user pool ($pool) or app client ($client)"

(cd "$here" && node verify.mjs "$url" "$pool" "$client" "$work/data")
status=$?

if [ "$status" -ne 0 ] && [ -s "$work/stderr" ]; then
  echo "# relay stderr:"
  sed 's/^/#   /' "$work/stderr"
fi
exit "$status"
