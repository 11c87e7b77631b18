#!/bin/sh
# check-potfiles.sh SOURCE_ROOT: every source, .ui and data file with
# translatable strings is in po/POTFILES.in (else its strings are never
# translated), and every file listed there exists.  Prints TAP.
set -u
cd "$1" || exit 1

missing=""
for f in $(find src ui data -type f \( -name '*.c' -o -name '*.ui' -o -name '*.in' -o -name '*.xml' \) | sort); do
  if grep -qE '(^|[^A-Za-z0-9_])(_|N_|C_|NC_) ?\(|translatable="yes"' "$f"; then
    grep -qx "$f" po/POTFILES.in || missing="$missing $f"
  fi
done

stale=""
for f in $(grep -v '^#' po/POTFILES.in | grep -v '^$'); do
  [ -f "$f" ] || stale="$stale $f"
done

echo "1..2"
if [ -z "$missing" ]; then
  echo "ok 1 - every file with translatable strings is in po/POTFILES.in"
else
  echo "not ok 1 - not in po/POTFILES.in:$missing"
fi
if [ -z "$stale" ]; then
  echo "ok 2 - every file in po/POTFILES.in exists"
else
  echo "not ok 2 - in po/POTFILES.in but gone:$stale"
fi
[ -z "$missing$stale" ]
