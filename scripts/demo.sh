#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: build husk, make a busybox rootfs, and run a container in it with every namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
HUSK=$PWD/build/husk

work=$(mktemp -d /tmp/husk-demo.XXXXXX)
chmod 755 "$work" # the user namespace's root (host uid 100000) must reach the rootfs
state=$work/state
cleanup() { "$HUSK" --root "$state" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# A rootfs of one static binary: Debian's busybox-static and its applet links.
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done

cd "$work/bundle"
"$HUSK" spec
# The default config isolates pid, network, ipc, uts, mount and cgroup; add user and time.
/usr/bin/python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname), I am pid $$, uid $(id -u)\"; "
    "echo 'namespaces:'; ls -l /proc/self/ns | awk 'NR>1 {print \"  \" $9 \" \" $11}'; "
    "echo 'mounts:'; awk '{print \"  \" $2 \" (\" $3 \")\"}' /proc/mounts; "
    "touch /etc/x 2>/dev/null || echo 'root filesystem is read-only'"]
c["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
json.dump(c, open("config.json", "w"), indent=2)
PY
echo "\$ husk run demo"
"$HUSK" --root "$state" run demo
echo "container exited with $?; nothing is left in $state: $(ls "$state" | wc -l) containers"
