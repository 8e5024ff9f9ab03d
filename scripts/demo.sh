#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: build husk, pack two example functions (a C program on the stdin/stdout contract and
# a small HTTP server on $PORT) into read-only erofs images, start `husk serve`, deploy them,
# call them, and print the curl lines to call them. Interactive: serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
HUSK=$PWD/build/husk
PORT=${HUSK_DEMO_PORT:-8080}
URL=http://127.0.0.1:$PORT

# Not under /tmp: functions get a fresh tmpfs there, which would hide a program packed from it.
work=$(mktemp -d /var/tmp/husk-demo.XXXXXX)
daemon=
cleanup() {
    [ -z "$daemon" ] || { kill -TERM "$daemon" 2>/dev/null && wait "$daemon" || true; }
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# Each image holds the program and its shared-library closure, read from the ELF headers.
# (The image keeps the program's host path: it is copied out of a checkout that may be in /tmp.)
mkdir -p "$work/bin"
for fn in hello-stdio http-hello; do
    cp "build/examples/functions/$fn" "$work/bin/$fn"
    say husk pack -f erofs -o "$work/$fn.erofs" "$work/bin/$fn"
    "$HUSK" pack -f erofs -o "$work/$fn.erofs" "$work/bin/$fn" | tail -n 2
done

# The front door (calls) on a loopback port; the admin API on a root-only unix socket.
ADMIN=unix:$work/admin.sock
export HUSK_URL=$ADMIN # what `husk fn` talks to
say husk serve --listen "127.0.0.1:$PORT" --admin-socket "$work/admin.sock" --state "$work/state" '&'
"$HUSK" serve --listen "127.0.0.1:$PORT" --admin-socket "$work/admin.sock" --state "$work/state" &
daemon=$!
for _ in $(seq 50); do curl -fs "$URL/_/health" >/dev/null && [ -S "$work/admin.sock" ] && break || sleep 0.1; done

say husk fn deploy hello --image hello-stdio.erofs --memory 64M -- .../hello-stdio
"$HUSK" fn deploy hello --image "$work/hello-stdio.erofs" --memory 64M --timeout 10 \
    -- "$work/bin/hello-stdio" >/dev/null && echo deployed
say husk fn deploy web --image http-hello.erofs --contract http --min 1 -- .../http-hello
"$HUSK" fn deploy web --image "$work/http-hello.erofs" --contract http --min 1 \
    --memory 64M -- "$work/bin/http-hello" >/dev/null && echo deployed

say curl -s -d world "$URL/function/hello"
curl -s -d world "$URL/function/hello"
say curl -s "$URL/function/web/some/path"
curl -s "$URL/function/web/some/path"
say husk fn ls
"$HUSK" fn ls
say husk fn logs hello
"$HUSK" fn logs hello
say "curl -s -X POST $URL/system/functions   # the admin API is not on the front door"
curl -s -X POST "$URL/system/functions"
say "curl -s $URL/metrics | grep husk_invocations_total"
curl -s "$URL/metrics" | grep '^husk_invocations_total'

cat <<TXT

husk serve is running on $URL. Try:
  curl -d 'your name' $URL/function/hello
  curl $URL/function/web/anything
  HUSK_URL=$ADMIN $HUSK fn logs hello -f
  curl $URL/metrics
TXT
if [ -t 0 ]; then
    echo "Ctrl-C stops it (and removes every sandbox)."
    wait "$daemon" || true
    daemon=
fi
