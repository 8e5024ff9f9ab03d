# SPDX-License-Identifier: Apache-2.0
"""Fixtures for husk's integration tests: a runtime driver, busybox bundles, and leak checks.

Environment:
  HUSK        the runtime under test (default <repo>/build/husk); any runc-compatible CLI works,
              e.g. HUSK=/usr/sbin/runc to check the tests themselves
  HUSK_PROBE  the static probe (default <repo>/build/tests/integration/probe/probe); when the
              default is missing, probe.c is compiled into the session's temp dir with cc
  HUSK_IT_TIMEOUT  seconds one runtime call may take (default 10)

Run as root: /usr/bin/python3 -m pytest tests/integration   (add -m "not husk_message and not
husk_behaviour" when HUSK is runc: those tests pin husk's own wording and choices)

Every test gets a `ctx` (see Ctx): a private temp dir, a private runtime state dir passed as
`--root`, unique container ids and a token put in the environment of everything it starts. After
the test, every container it named is deleted with `delete --force`, then the leak check fails
the test if a process, a mount under its temp dir, a state dir entry or a cgroup is left.

The pytest process makes itself a child subreaper, like a container manager's shim: detached
containers are re-parented to it instead of to pid 1 (which, on some machines, never reaps), and
the harness reaps them before each runtime call.
"""

import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HUSK = os.path.abspath(os.environ.get("HUSK", REPO / "build" / "husk"))
PROBE = os.path.abspath(os.environ.get("HUSK_PROBE", REPO / "build/tests/integration/probe/probe"))
CALL_TIMEOUT = float(os.environ.get("HUSK_IT_TIMEOUT", "10"))  # per runtime call; raise for ASan

TOKEN_VAR = "HUSK_IT_TOKEN"  # in the env of each runtime call and each container of a test
HOST_ONLY_VAR = "HUSK_IT_HOST_ONLY"  # in the runtime's env only; must never reach a container
CGROUP_ROOT = Path("/sys/fs/cgroup")
PR_SET_CHILD_SUBREAPER = 36

# OCI namespace type -> name under /proc/<pid>/ns/
NS_PROC_NAME = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "husk_message: pins husk's own wording of an error (runc words it otherwise)")
    config.addinivalue_line(
        "markers", "husk_behaviour: asserts a choice husk makes where runc chooses otherwise")


# ---------------------------------------------------------------------------------------------
# /proc helpers


def host_ns(name):
    return os.stat(f"/proc/self/ns/{name}").st_ino


def proc_stat(pid):
    """(state, starttime) of a pid, or None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def proc_children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                children = Path(f"/proc/{pid}/task/{task}/children").read_text()
                out += [int(c) for c in children.split()]
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    return out


def proc_descendants(pid):
    todo, seen = proc_children(pid), []
    while todo:
        child = todo.pop()
        seen.append(child)
        todo += proc_children(child)
    return seen


def proc_cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def reap_children(keep=()):
    """Reaps our zombie children: re-parented container processes, as a shim would. `keep`:
    pids of runtime calls still being waited for."""
    for pid in proc_children(os.getpid()):
        if pid in keep:
            continue
        st = proc_stat(pid)
        if st and st[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _run_reaping(cmd, out, err, cwd, env, timeout):
    """Runs a runtime call while reaping re-parented container processes, as containerd's shim
    does: a pid namespace's init that is killed waits for every zombie of its namespace to be
    reaped, and those may be ours (the subreaper's)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            return "timeout"
        reap_children(keep=(p.pid,))
        time.sleep(0.002)
    return p.returncode


def pid_alive(pid):
    reap_children()
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def mountinfo(path="/proc/self/mountinfo"):
    """mountinfo as dicts: target, root, options, propagation, fstype, source, super_options."""
    mounts = []
    for line in Path(path).read_text().splitlines():
        fields = line.split(" ")
        dash = fields.index("-", 6)

        def unescape(s):
            return s.encode().decode("unicode_escape") if "\\" in s else s

        mounts.append({
            "target": unescape(fields[4]),
            "root": unescape(fields[3]),
            "options": fields[5],
            "propagation": fields[6:dash],
            "fstype": fields[dash + 1],
            "source": unescape(fields[dash + 2]),
            "super_options": fields[dash + 3],
        })
    return mounts


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# session: probe, base dir, rootfs template, default spec


def _ensure_probe(base):
    if os.path.exists(PROBE):
        return PROBE
    if "HUSK_PROBE" in os.environ:
        pytest.exit(f"HUSK_PROBE={PROBE} does not exist", returncode=2)
    # No meson build with tests on: compile the probe ourselves, as meson would.
    out = base / "probe"
    src = Path(__file__).parent / "probe" / "probe.c"
    subprocess.run(["cc", "-std=gnu11", "-O2", "-static", "-o", str(out), str(src)], check=True)
    return str(out)


def _make_rootfs_template(base, probe):
    """A busybox rootfs: /bin/busybox and its applets, the usual top dirs, and /probe."""
    rootfs = base / "template" / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "mnt", "root", "srv/app"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], check=True, capture_output=True,
                             text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            os.symlink("busybox", rootfs / "bin" / applet)
    shutil.copy2(probe, rootfs / "probe")
    os.chmod(rootfs / "probe", 0o755)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    return rootfs


def _default_spec(base):
    """config.json as `$HUSK spec` writes it, made non-interactive."""
    d = base / "spec"
    d.mkdir()
    r = subprocess.run([HUSK, "spec"], cwd=d, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.exit(f"`{HUSK} spec` failed ({r.returncode}): {r.stderr.strip()}", returncode=2)
    config = json.loads((d / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/probe"]
    config["root"]["path"] = "rootfs"
    return config


class Session:
    def __init__(self):
        if os.geteuid() != 0:
            pytest.skip("the integration tests need root")
        if not os.access(HUSK, os.X_OK):
            pytest.exit(f"runtime not found: {HUSK} (build it, or set HUSK=...)", returncode=2)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            pytest.exit("prctl(PR_SET_CHILD_SUBREAPER) failed", returncode=2)
        # 0755 all the way: a container root mapped to another uid must reach its rootfs.
        self.base = Path(tempfile.mkdtemp(prefix="husk-it-", dir="/tmp"))
        try:
            os.chmod(self.base, 0o755)
            self.probe = _ensure_probe(self.base)
            self.template = _make_rootfs_template(self.base, self.probe)
            self.spec = _default_spec(self.base)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def close(self):
        if not any(m["target"].startswith(str(self.base) + "/") for m in mountinfo()):
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def session():
    s = Session()
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------
# per test


class Result:
    """What one runtime call did: iterable as (rc, stdout, stderr); str() is for assert messages."""

    def __init__(self, argv, rc, out, err, out_path=None):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.out_path = out_path  # where the container's stdout keeps going, for detached ones

    def __iter__(self):
        return iter((self.rc, self.out, self.err))

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise AssertionError(f"stdout is not JSON: {self}") from None

    def __str__(self):
        return (f"\n$ {shlex.join(self.argv)}\nrc={self.rc}\n--- stdout\n{self.out[-3000:]}"
                f"\n--- stderr\n{self.err[-3000:]}")

    __repr__ = __str__


class Bundle:
    """A bundle dir: rootfs (hard links to the template) and a config dict written on demand."""

    def __init__(self, ctx, path, template, spec):
        self.ctx, self.path, self.rootfs = ctx, path, path / "rootfs"
        _copy_tree_linked(template, self.rootfs)
        self.config = json.loads(json.dumps(spec))
        self.config["process"]["env"] = list(self.config["process"].get("env", [])) + [
            f"{TOKEN_VAR}={ctx.token}"]

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def args(self, *args):
        self.process["args"] = [str(a) for a in args]
        return self

    def probe(self, *args):
        return self.args("/probe", *args)

    def ns_types(self):
        return [n["type"] for n in self.linux.get("namespaces", [])]

    def set_ns(self, ns_type, path=None):
        """Adds (or replaces) a namespace entry; path=None means a new namespace."""
        self.remove_ns(ns_type)
        entry = {"type": ns_type}
        if path:
            entry["path"] = str(path)
        self.linux.setdefault("namespaces", []).append(entry)

    def remove_ns(self, ns_type):
        namespaces = self.linux.get("namespaces", [])
        self.linux["namespaces"] = [n for n in namespaces if n["type"] != ns_type]

    def add_mount(self, destination, type_, source, options=()):
        m = {"destination": destination, "type": type_, "source": str(source)}
        if options:
            m["options"] = list(options)
        self.config.setdefault("mounts", []).append(m)
        return m

    def write(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))


def _copy_tree_linked(src, dst):
    """Copies a directory tree, hard-linking regular files (the template is never written to)."""
    dst.mkdir(mode=0o755)
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            _copy_tree_linked(Path(entry.path), target)
            os.chmod(target, entry.stat().st_mode & 0o7777)
        else:
            os.link(entry.path, target)


class Ctx:
    """Per-test harness: runtime driver, bundles, ids, and the leak check."""

    def __init__(self, session, name):
        self.session = session
        self.token = uuid.uuid4().hex[:12]
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name[:40]}-", dir=session.base))
        os.chmod(self.dir, 0o755)
        self.state = self.dir / "state"
        self.ids = []
        self.pids = []  # (pid, starttime) of container processes the test saw
        self.host_mounts = []  # mounts the test made on the host itself
        self.wrap = []  # a command the runtime runs under, e.g. nsenter into a test's netns
        self._n = 0

    # ---- names and files

    def new_id(self):
        cid = f"husk-it-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def path(self, name):
        self._n += 1
        return self.dir / f"{self._n:03d}-{name}"

    def bundle(self, name="bundle"):
        d = self.dir / name
        d.mkdir(mode=0o755)
        return Bundle(self, d, self.session.template, self.session.spec)

    # ---- the runtime

    def env(self):
        env = dict(os.environ)
        env[TOKEN_VAR] = self.token
        env[HOST_ONLY_VAR] = "1"
        return env

    def runtime(self, *args, global_args=(), cwd=None, timeout=CALL_TIMEOUT, pass_fds_files=()):
        """Runs `HUSK --root STATE [global_args] args`; stdio go to files so detached containers
        that keep them open cannot hang the call. pass_fds_files: paths opened as fds 3, 4, ..."""
        reap_children()
        argv = [HUSK, "--root", str(self.state), *global_args, *[str(a) for a in args]]
        out_path, err_path = self.path("out"), self.path("err")
        cmd = argv = [*self.wrap, *argv]
        if pass_fds_files:
            # subprocess cannot place an fd at a chosen number, a shell can: exec 3<f 4<f ...
            files = enumerate(pass_fds_files, 3)
            redirs = " ".join(f"{fd}<{shlex.quote(str(p))}" for fd, p in files)
            cmd = ["/bin/sh", "-c", f'exec "$@" {redirs}', "sh", *argv]
        with open(out_path, "w") as out, open(err_path, "w") as err:
            rc = _run_reaping(cmd, out, err, cwd, self.env(), timeout)
        result = Result(argv, rc, out_path.read_text(errors="replace"),
                        err_path.read_text(errors="replace"), out_path)
        if rc == "timeout":
            raise AssertionError(f"runtime call timed out after {timeout}s: {result}\n"
                                 f"--- processes of this test (pid state wchan cmdline)\n"
                                 + "\n".join(self._describe_processes()))
        return result

    def _token_pids(self):
        me, mark = os.getpid(), f"{TOKEN_VAR}={self.token}".encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me:
                try:
                    if mark in Path(f"/proc/{entry}/environ").read_bytes():
                        yield int(entry)
                except OSError:
                    pass

    def _describe_processes(self):
        lines = []
        for pid in sorted(set(self._token_pids()) | set(proc_descendants(os.getpid()))):
            try:
                wchan = Path(f"/proc/{pid}/wchan").read_text()
            except OSError:
                wchan = "?"
            st = proc_stat(pid)
            lines.append(f"{pid} {st[0] if st else '?'} {wchan} {proc_cmdline(pid)}")
        return lines

    def run(self, bundle, *flags, cid=None, write=True, **kw):
        """`run --bundle B [flags] ID` in the foreground; returns the Result."""
        if write:
            bundle.write()
        return self.runtime("run", "--bundle", bundle.path, *flags, cid or self.new_id(), **kw)

    def probe(self, bundle, *probe_args):
        """Runs /probe in the bundle's container and returns its JSON."""
        bundle.probe(*probe_args)
        r = self.run(bundle)
        assert r.rc == 0, str(r)
        return r.json()

    def probes(self, bundle, *commands):
        """Runs several probe sub-commands in one container (via sh); returns their JSON lines."""
        script = "; ".join(shlex.join(["/probe", *map(str, c)]) for c in commands)
        bundle.args("/bin/sh", "-c", script)
        r = self.run(bundle)
        assert r.rc == 0, str(r)
        return [json.loads(line) for line in r.out.splitlines()]

    def run_detached(self, bundle, args=("/probe", "sleep", "30"), cid=None, ready=True):
        """`run -d`; returns a Container once the probe says it is ready (its handlers are set)."""
        bundle.args(*args)
        bundle.write()
        c = Container(self, cid or self.new_id(), bundle)
        r = self.runtime("run", "-d", "--bundle", bundle.path, c.id)
        assert r.rc == 0, str(r)
        c.stdout = r.out_path
        c.pid = self.state_of(c.id)["pid"]
        if ready and args[:2] == ("/probe", "sleep"):
            c.wait_output('"ready"')
        return c

    def create(self, bundle, *flags, cid=None):
        """`create --bundle B [flags] ID`; the Container's create_result says how it went."""
        bundle.write()
        c = Container(self, cid or self.new_id(), bundle)
        r = self.runtime("create", "--bundle", bundle.path, *flags, c.id)
        c.create_result = r
        c.stdout = r.out_path
        return c

    def state_of(self, cid):
        r = self.runtime("state", cid)
        assert r.rc == 0, str(r)
        st = r.json()
        if st.get("pid"):
            self.record_pid(st["pid"])
        return st

    def status_of(self, cid):
        return self.state_of(cid)["status"]

    def wait_status(self, cid, status, timeout=10):
        wait_for(lambda: self.status_of(cid) == status, timeout, f"{cid} to be {status}")

    def record_pid(self, pid):
        st = proc_stat(pid)
        if st and (pid, st[1]) not in self.pids:
            self.pids.append((pid, st[1]))

    def host_mount(self, target, *mount_args):
        """Mounts something on the host under the test dir; undone after the containers go."""
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *mount_args, str(target)], check=True)
        self.host_mounts.append(str(target))
        return target

    # ---- leaks

    def leaks(self):
        """Everything this test left behind, as human-readable lines."""
        reap_children()
        found = []
        me = os.getpid()
        procs = set()
        for pid, start in self.pids:
            st = proc_stat(pid)
            if st and st[1] == start and st[0] != "Z":
                procs.add(pid)
        procs.update(p for p in proc_descendants(me) if pid_alive(p))
        procs.update(p for p in self._token_pids() if pid_alive(p))
        found += [f"process {p}: {proc_cmdline(p)}" for p in sorted(procs)]

        prefix = str(self.dir) + "/"
        found += [f"mount {m['target']} ({m['fstype']})" for m in mountinfo()
                  if m["target"].startswith(prefix) and m["target"] not in self.host_mounts]

        if self.state.exists():
            for entry in os.scandir(self.state):
                if entry.name == ".seccomp-cache":  # husk's compiled-filter cache, not a container
                    continue
                if entry.is_dir(follow_symlinks=False) or any(i in entry.name for i in self.ids):
                    found.append(f"state dir entry {entry.path}")

        found += [f"cgroup {c}" for c in self._cgroups()]
        return found

    def _cgroups(self):
        if not self.ids:
            return []
        hits = []

        def walk(d, level):
            try:
                entries = [e for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
            except OSError:
                return
            for e in entries:
                if any(i in e.name for i in self.ids):
                    hits.append(e.path)
                elif level < 3:
                    walk(e.path, level + 1)

        for controller in CGROUP_ROOT.iterdir():
            if controller.is_dir() and not controller.is_symlink():
                walk(controller, 1)
        return hits

    def assert_nothing_left(self):
        left = self.leaks()
        assert not left, "left behind:\n  " + "\n  ".join(left)

    # ---- teardown

    def teardown(self):
        """Deletes the test's containers, undoes its host mounts, then returns what is left."""
        problems = []
        for cid in reversed(self.ids):
            try:
                self.runtime("delete", "--force", cid)
            except AssertionError:
                problems.append(f"`delete --force {cid}` timed out")
        for target in reversed(self.host_mounts):
            subprocess.run(["umount", "-l", target], check=False)
        self.host_mounts = []
        left = problems + self.leaks()
        if left:
            self._force_cleanup()
        if not any(m["target"].startswith(str(self.dir) + "/") for m in mountinfo()):
            shutil.rmtree(self.dir, ignore_errors=True)
        return left

    def _force_cleanup(self):
        """Undoes what the runtime left, so one broken test does not break the next ones."""
        for line in self.leaks():
            if line.startswith("process "):
                try:
                    os.kill(int(line.split()[1].rstrip(":")), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
        reap_children()
        prefix = str(self.dir) + "/"
        for m in sorted((m["target"] for m in mountinfo() if m["target"].startswith(prefix)),
                        key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        for c in sorted(self._cgroups(), key=len, reverse=True):
            for sub in sorted((p for p, _, _ in os.walk(c)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


class Container:
    def __init__(self, ctx, cid, bundle):
        self.ctx, self.id, self.bundle = ctx, cid, bundle
        self.pid = None
        self.stdout = None
        self.create_result = None

    def state(self):
        return self.ctx.state_of(self.id)

    def status(self):
        return self.state()["status"]

    def output(self):
        return self.stdout.read_text(errors="replace") if self.stdout else ""

    def output_lines(self):
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def wait_output(self, text, timeout=10):
        wait_for(lambda: text in self.output(), timeout, f"{text!r} in the output of {self.id}")

    def start(self):
        return self.ctx.runtime("start", self.id)

    def kill(self, *sig, all_=False):
        return self.ctx.runtime("kill", *(["--all"] if all_ else []), self.id, *sig)

    def delete(self, force=False):
        return self.ctx.runtime("delete", *(["--force"] if force else []), self.id)


@pytest.fixture
def ctx(session, request):
    c = Ctx(session, request.node.name.replace("[", "-").replace("]", "").replace("/", "_"))
    try:
        yield c
    finally:
        left = c.teardown()
    if left:
        pytest.fail("left behind after the containers were deleted:\n  " + "\n  ".join(left))


@pytest.fixture
def bundle(ctx):
    return ctx.bundle()
