#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Resource control on a pure cgroup v2 host, for real: Debian's cloud kernel boots under qemu (TCG;
# KVM hangs in nested setups) with an initramfs of busybox, a static husk, the probe and
# tests/v2vm/test.sh, which runs containers with limits and checks the cgroup2 files.
#
# Prints the VM's "ok/not ok" lines and "N passed, N failed". Exit: 0 all passed, 1 a check
# failed or the VM did not finish, 77 the VM cannot be built here (no packages). Run as root.
#
#   HUSK_V2VM_CACHE    kernel and initramfs (default /var/tmp/husk-v2vm)
#   HUSK_V2VM_TIMEOUT  seconds for the VM (default 300; a run takes 10-45 s)
#   HUSK_V2VM_BOOT_TIMEOUT  seconds for the VM to reach init (default 150; it takes 2-6 s)
#   HUSK_PROBE         the static probe (default build/tests/integration/probe/probe, else built)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HUSK_V2VM_CACHE:-/var/tmp/husk-v2vm}
timeout_s=${HUSK_V2VM_TIMEOUT:-300}
build=$repo/build-v2vm-static
mkdir -p "$cache"

log() { printf '# %s\n' "$*" >&2; }

# ---- packages (only what is missing)
# The -dev packages carry the static .a files a static husk links (libacl1-dev: libarchive's).
pkgs=(qemu-system-x86 busybox-static meson ninja-build gcc libc6-dev pkg-config libjansson-dev
      libseccomp-dev libcap-dev libssl-dev libelf-dev libarchive-dev libacl1-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$cache/apt.log" 2>&1; then
        echo "cannot install ${missing[*]} (see $cache/apt.log)"
        exit 77
    fi
fi

# ---- the kernel: downloaded and unpacked, never installed on the host
if [ ! -s "$cache/vmlinuz" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { echo "no linux-image-cloud-amd64 in the apt sources"; exit 77; }
    log "downloading $pkg"
    (cd "$cache" && apt-get download "$pkg") >"$cache/download.log" 2>&1 ||
        { echo "apt-get download $pkg failed (see $cache/download.log)"; exit 77; }
    rm -rf "$cache/x"
    dpkg-deb -x "$cache/${pkg}"_*.deb "$cache/x"
    cp "$cache"/x/boot/vmlinuz-* "$cache/vmlinuz"
    rm -rf "$cache/x"
fi

# ---- husk of this tree: static as the brief of the harness asks; when a dependency's static
# closure does not link (libarchive -> libxml2 -> ICU on Debian 12), a dynamic husk and its
# shared libraries instead (our own binary: ldd is fine here).
husk_bin=
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$repo" -Dtests=false -Dprefer_static=true -Dc_link_args=-static \
        -Dbuildtype=release >"$cache/meson.log" 2>&1 || log "static meson setup failed"
fi
if [ -f "$build/build.ninja" ] && ninja -C "$build" husk >"$cache/ninja.log" 2>&1; then
    husk_bin=$build/husk
else
    log "static link failed ($(grep -m1 -E 'undefined reference|cannot find' "$cache/ninja.log" || true)); using a dynamic husk"
    dyn=$repo/build-v2vm-dynamic
    [ -f "$dyn/build.ninja" ] || meson setup "$dyn" "$repo" -Dtests=false -Dbuildtype=release \
        >"$cache/meson-dyn.log" 2>&1 || { echo "meson setup failed (see $cache/meson-dyn.log)"; exit 1; }
    ninja -C "$dyn" husk >"$cache/ninja.log" 2>&1 || { echo "build failed:"; tail -20 "$cache/ninja.log"; exit 1; }
    husk_bin=$dyn/husk
fi
probe=${HUSK_PROBE:-$repo/build/tests/integration/probe/probe}
if [ ! -x "$probe" ]; then
    probe=$cache/probe
    cc -std=gnu11 -O2 -static -o "$probe" "$repo/tests/integration/probe/probe.c"
fi

# ---- the initramfs
stage=$(mktemp -d "$cache/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
cp /bin/busybox "$stage/bin/busybox"
cp "$husk_bin" "$stage/husk"
# a dynamic husk brings its loader and libraries, at the same paths
for lib in $(ldd "$husk_bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
done
cp "$probe" "$stage/probe"
install -m 0755 "$here/init" "$stage/init"
install -m 0755 "$here/test.sh" "$stage/test.sh"
(cd "$stage" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$cache/initramfs.gz"

# ---- boot
# The kernel's boot messages go to the console (init then quiets it to errors): when a boot
# stalls, its last lines say where.
# init prints "# kernel ..." first; a VM that has not reached it in $boot_s seconds is stalled in
# the emulator (seen twice in hundreds of boots, under TCG, before init ran): that boot is killed,
# reported with its last console lines, and the VM booted once more. A failing check never retries.
boot_s=${HUSK_V2VM_BOOT_TIMEOUT:-150}
out=$cache/console.log
booted() { tr -d '\r' <"$out" | grep -q '^# kernel '; }
boot() {
    timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 768 -nographic \
        -no-reboot -kernel "$cache/vmlinuz" -initrd "$cache/initramfs.gz" \
        -append "console=ttyS0 panic=-1 loglevel=7" </dev/null >"$out" 2>&1 &
    qemu=$!
    for ((t = 0; t < boot_s; t++)); do
        booted && break
        kill -0 "$qemu" 2>/dev/null || break
        sleep 1
    done
    if ! booted && kill -0 "$qemu" 2>/dev/null; then
        kill "$qemu" 2>/dev/null
        wait "$qemu" 2>/dev/null
        return 2
    fi
    wait "$qemu"
}
for attempt in 1 2; do
    log "booting $(basename "$(readlink -f "$cache/vmlinuz")") under qemu (tcg), attempt $attempt"
    set +e
    boot
    rc=$?
    set -e
    [ "$rc" = 2 ] || break
    log "the VM did not reach init in $boot_s s; its last console lines:"
    tr -d '\r' <"$out" | tail -8 | sed 's/^/#   /' >&2
done
tr -d '\r' <"$out" | grep -E '^(ok|not ok|#|[0-9]+ passed)' || true
summary=$(tr -d '\r' <"$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1 || true)
if [ -z "$summary" ]; then
    if [ "$rc" = 2 ]; then echo "the VM did not reach init in two boots"; else echo "the VM did not finish (qemu exit $rc); last console lines:"; fi
    tr -d '\r' <"$out" | tail -20
    exit 1
fi
[ "$(echo "$summary" | awk '{ print $3 }')" = 0 ]
