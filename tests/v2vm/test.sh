#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# Runs as PID 1 in the v2 VM (pure cgroup2, every controller): containers with limits, checked in
# the cgroup2 files. One line per check on the serial console ("ok N - what" / "not ok N - what"),
# then "N passed, N failed", then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# What systemd does on a v2 host: controllers on for the children of the root.
echo "+cpuset +cpu +io +memory +hugetlb +pids" >/sys/fs/cgroup/cgroup.subtree_control
CG=/sys/fs/cgroup
H="/husk --root /run/husk"
echo "# kernel $(uname -r); cgroup2 root controllers: $(cat $CG/cgroup.subtree_control)"

n=0 pass=0 fail=0
ok() { n=$((n + 1)) pass=$((pass + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)) fail=$((fail + 1)); echo "not ok $n - $1"; }
check() { # NAME COMMAND...: the command's status decides
    name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
eq() { [ "$1" = "$2" ] || { echo "#   expected '$2', got '$1'"; return 1; }; }
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "#   '$2' not in: $1"; return 1; }
lacks() { case "$1" in *"$2"*) echo "#   '$2' in: $1"; return 1 ;; esac; return 0; }
wait_for() { # SECONDS COMMAND...
    t=$(($1 * 10))
    shift
    while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.1; t=$((t - 1)); done
    return 1
}

# ---- a busybox bundle; config() writes config.json: ARGS RESOURCES [EXTRA_LINUX] [EXTRA_MOUNTS]
mkdir -p /b/rootfs/bin /b/rootfs/proc /b/rootfs/dev /b/rootfs/tmp
cp /bin/busybox /b/rootfs/bin/ && cp /probe /b/rootfs/probe
for a in sh sleep cat echo tail true seq; do ln -s busybox /b/rootfs/bin/$a; done
config() {
    cat >/b/config.json <<JSON
{"ociVersion": "1.2.0",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": $1,
             "env": ["PATH=/bin"], "cwd": "/",
             "capabilities": {"bounding": ["CAP_SYSLOG"], "effective": ["CAP_SYSLOG"],
                              "permitted": ["CAP_SYSLOG"]}},
 "root": {"path": "rootfs"},
 "hostname": "v2vm",
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
            $4],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
                          {"type": "cgroup"}],
           "resources": $2 $3}}
JSON
}
SLEEP='["/bin/sleep", "60"]'

# ---- detection, placement, limits in the v2 files
config "$SLEEP" '{"memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
                  "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
                  "pids": {"limit": 20}, "blockIO": {"weight": 500}}'
# (a detached container keeps its stdio: never inside $(...), which would wait for it)
$H --debug run -d --bundle /b c1 </dev/null >/tmp/c1.out 2>&1
check "run -d with limits" eq "$?" 0
check "the host is detected as pure v2" has "$(cat /tmp/c1.out)" "(v2)"
echo "# $(grep 'cgroup /husk' /tmp/c1.out)"
d=$CG/husk/c1
check "memory.max" eq "$(cat $d/memory.max)" 67108864
check "memory.swap.max is swap - limit" eq "$(cat $d/memory.swap.max)" 33554432
check "memory.low" eq "$(cat $d/memory.low)" 33554432
check "cpu.max" eq "$(cat $d/cpu.max)" "50000 100000"
check "cpu.weight from shares 1024" eq "$(cat $d/cpu.weight)" 39
check "pids.max" eq "$(cat $d/pids.max)" 20
check "cpuset.cpus" eq "$(cat $d/cpuset.cpus)" 0
pid=$($H state c1 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
check "the process was born in its cgroup (CLONE_INTO_CGROUP)" has "$(cat $d/cgroup.procs)" "$pid"
check "husk enabled controllers only below the root" has "$(cat $CG/husk/cgroup.subtree_control)" memory

# ---- pause / resume: cgroup.freeze
$H pause c1
check "pause writes cgroup.freeze" eq "$(cat $d/cgroup.freeze)" 1
check "cgroup.events says frozen" has "$(cat $d/cgroup.events)" "frozen 1"
check "state says paused" has "$($H state c1)" '"paused"'
$H resume c1
check "resume thaws" eq "$(cat $d/cgroup.freeze)" 0
check "state says running" has "$($H state c1)" '"running"'

# ---- update, ps, events --stats
$H update --memory 128m --pids-limit 50 --cpu-quota 20000 c1
check "update memory.max" eq "$(cat $d/memory.max)" 134217728
check "update pids.max" eq "$(cat $d/pids.max)" 50
check "update keeps the period in cpu.max" eq "$(cat $d/cpu.max)" "20000 100000"
echo '{"unified": {"memory.high": "104857600"}}' >/tmp/res.json
$H update -r /tmp/res.json c1
check "update -r unified memory.high" eq "$(cat $d/memory.high)" 104857600
out=$($H update --memory 4096 c1 2>&1)
check "a limit below the usage is refused" has "$out" "below the current usage"
check "and the limit stays" eq "$(cat $d/memory.max)" 134217728
check "ps --format json" has "$($H ps --format json c1)" "$pid"
check "events --stats" has "$($H events --stats c1)" '"limit":134217728'
$H delete --force c1
check "delete removes the cgroup" eq "$(ls -d $d 2>/dev/null)" ""

# ---- OOM
config '["/bin/tail", "/dev/zero"]' '{"memory": {"limit": 33554432, "swap": 33554432}}'
out=$($H run --bundle /b oom1 2>&1)
rc=$?
check "a memory bomb is OOM-killed (137)" eq "$rc" 137
check "run says it ran out of memory" has "$out" "ran out of memory"
config '["/bin/sh", "-c", "sleep 1; tail /dev/zero; sleep 60"]' \
    '{"memory": {"limit": 33554432, "swap": 33554432}}'
$H run -d --bundle /b oom2 </dev/null >/dev/null 2>&1
$H events --interval 200ms oom2 </dev/null >/tmp/events 2>&1 &
evpid=$!
wait_for 20 grep -q '"type":"oom"' /tmp/events
check "events streams the OOM kill" has "$(cat /tmp/events)" '{"type":"oom","id":"oom2"}'
check "memory.events counts it" has "$(cat $CG/husk/oom2/memory.events)" "oom_kill 1"
$H delete --force oom2
wait $evpid

# ---- pids: a fork bomb stops at the limit
config '["/bin/sh", "-c", "sh -c '"'"'i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done'"'"'; echo forked; sleep 60"]' \
    '{"pids": {"limit": 10}}'
$H run -d --bundle /b fork </dev/null >/tmp/fork.out 2>&1
wait_for 20 grep -q forked /tmp/fork.out
cur=$(cat $CG/husk/fork/pids.current)
check "the fork bomb stops at pids.max ($cur <= 10)" [ "$cur" -le 10 ]
check "pids.events counts refused forks" lacks "$(cat $CG/husk/fork/pids.events)" "max 0"
$H delete --force fork

# ---- cpu: a hog under a 0.2 CPU quota
config '["/bin/sh", "-c", "while :; do :; done"]' '{"cpu": {"quota": 20000, "period": 100000}}'
$H run -d --bundle /b hog </dev/null >/dev/null 2>&1
sleep 0.5
u0=$(sed -n 's/^usage_usec //p' $CG/husk/hog/cpu.stat)
t0=$(cut -d' ' -f1 /proc/uptime)
sleep 3
u1=$(sed -n 's/^usage_usec //p' $CG/husk/hog/cpu.stat)
t1=$(cut -d' ' -f1 /proc/uptime)
share=$(awk -v u="$((u1 - u0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", u / ((b - a) * 10000) }')
# Only the ceiling is a property of the limit: under emulation the hog may get less than its
# quota (the guest's vCPU is slow and shared), never more.
check "the hog stays within its quota (${share}% of a CPU, quota 20%)" [ "$share" -le 30 ]
check "and is throttled" lacks "$(cat $CG/husk/hog/cpu.stat)" "nr_throttled 0"
$H delete --force hog

# ---- devices: the eBPF filter
KMSG=', {"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}'
TRY='["/bin/sh", "-c", "(exec 3</dev/kmsg) 2>&1 && echo opened; exec 4<>/dev/null && echo null"]'
config "$TRY" '{"devices": [{"allow": false, "access": "rwm"}]}' "" "$KMSG"
out=$($H run --bundle /b dev1 2>&1)
check "a device outside the allow list cannot be opened" has "$out" "Operation not permitted"
check "the default devices can" has "$out" null
check "(and /dev/kmsg was not opened)" lacks "$out" opened
config "$TRY" '{"devices": [{"allow": false, "access": "rwm"},
                            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]}' \
    "" "$KMSG"
out=$($H run --bundle /b dev2 2>&1)
check "a device on the allow list can be opened" has "$out" opened

# ---- kill --all through cgroup.kill, without a pid namespace
config '["/bin/sh", "-c", "sleep 60 & sleep 60 & wait"]' '{}'
sed -i 's/{"type": "pid"}, //' /b/config.json
$H run -d --bundle /b ka </dev/null >/dev/null 2>&1
wait_for 5 sh -c "[ \$(wc -l < $CG/husk/ka/cgroup.procs) -ge 3 ]"
$H kill --all ka KILL
wait_for 20 sh -c "[ ! -s $CG/husk/ka/cgroup.procs ]"
check "kill --all empties the cgroup" eq "$(cat $CG/husk/ka/cgroup.procs)" ""
$H delete ka
check "delete after kill --all" eq "$(ls -d $CG/husk/ka 2>/dev/null)" ""

# ---- bad values leave nothing behind
config "$SLEEP" '{"unified": {"memory.nonsense": "1"}}'
out=$($H run --bundle /b bad1 2>&1)
check "an unknown unified key is an error" has "$out" "unified 'memory.nonsense'"
check "and leaves no cgroup" eq "$(ls -d $CG/husk/bad1 2>/dev/null)" ""
config "$SLEEP" '{"cpu": {"realtimeRuntime": 1000}}'
out=$($H run --bundle /b bad2 2>&1)
check "realtime limits are refused on v2" has "$out" "no realtime"
check "state is clean" eq "$(ls /run/husk | grep -v '^\.' )" ""
check "no cgroup is left" eq "$(cd $CG/husk && ls -d */ 2>/dev/null)" ""

echo "$pass passed, $fail failed"
sync
poweroff -f
