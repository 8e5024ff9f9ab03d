# SPDX-License-Identifier: Apache-2.0
# The zygote of a Python function (`husk fn deploy --zygote`): run by the agent of the
# version's template sandbox as
#   python3 [OPTIONS] -c THIS SCRIPT [ARG...]
# with the agent's socket on fd 3. It compiles SCRIPT and imports what SCRIPT imports at its top
# level from outside its own directory (the standard library, site-packages) once, then forks:
# the agent sends a run's environment and stdio (agent-proto.h, AGENT_RUN), the zygote answers
# its pid (AGENT_STARTED) and, once it reaped it, its wait status (AGENT_EXIT). A run is an
# instance: an http server (gated: it waits for a byte on stdin, sent once the daemon moved it
# into the instance's cgroup), or a zygote of its own (stdio, CGI) serving the daemon's calls
# on its stdin the same way. A call's process sets up stdio, environment, argv and __main__ as
# `python3 SCRIPT` would, draws new random state, runs the compiled code, and exits as Python
# does (threads joined, atexit handlers, the script's objects released, stdio flushed) but
# without tearing the interpreter down: that would write to every object the zygote shares
# with it, copying each page. Only built-in modules are used here: a packed root holds the
# interpreter and what the function imports, nothing more.
import sys
import posix
import _signal
import _socket
import _struct
import array
import gc
import select

_HDR = _struct.Struct("=IIiI")  # struct agent_msg
_RUN, _EXIT, _STARTED = 1, 2, 3
_GATED = 2  # AGENT_RUN_GATED: stdin is a gate, one byte once the run is in its cgroup
_ZYGOTE = 4  # AGENT_RUN_ZYGOTE: the run becomes a zygote serving runs on its stdin


def _husk_load(script):
    """The script's code, or the exception `python3 SCRIPT` would meet."""
    try:
        with open(script, "rb") as f:
            return compile(f.read(), script, "exec", dont_inherit=True), None, None
    except OSError as e:
        return None, e, None
    except BaseException as e:
        return None, None, e


def _husk_imports(script):
    """Module names the script imports at its top level (in try blocks too)."""
    import _ast

    try:
        with open(script, "rb") as f:
            tree = compile(f.read(), script, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    except BaseException:
        return []
    names, todo = [], list(tree.body)
    while todo:
        n = todo.pop(0)
        if isinstance(n, _ast.Import):
            names += [a.name for a in n.names]
        elif isinstance(n, _ast.ImportFrom) and n.level == 0 and n.module:
            names.append(n.module)
        elif isinstance(n, _ast.Try):
            todo += n.body
    return names


def _husk_preload(script, here):
    """Import what the script imports, unless it lives beside the script: the function's own
    modules run their top level in each call, as without the zygote."""
    for name in _husk_imports(script):
        top = name.partition(".")[0]
        if top in sys.modules and name in sys.modules:
            continue
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(top, None) if find else None
                if spec is not None:
                    break
            origin = getattr(spec, "origin", None) or ""
            locations = list(getattr(spec, "submodule_search_locations", None) or [])
            if spec is None or any(p.startswith(here + "/") for p in [origin] + locations):
                continue
            __import__(name)
        except BaseException:
            pass  # the call meets the same error where the script imports it


def _husk_receive(sock, buf, anc):
    """A run: (run id, environment, fds, flags); None at the end; run id None for a bad
    message."""
    try:
        n, ancdata, _, _ = sock.recvmsg_into([buf], anc)
    except OSError:
        n = 0
    if n == 0:
        return None
    fds = array.array("i")
    for level, typ, data in ancdata:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % 4])
    kind, rid, flags, length = _HDR.unpack_from(buf) if n >= _HDR.size else (0, 0, 0, 0)
    if kind != _RUN or len(fds) != 3 or _HDR.size + length != n:
        for fd in fds:
            posix.close(fd)
        return None, b"", fds[:0], 0
    return rid, bytes(buf[_HDR.size : n]), fds, flags


def _husk_leave(closing):
    """Leave the zygote's loop behind (its sockets, its SIGCHLD handling) for a call."""
    _signal.set_wakeup_fd(-1)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, _husk_mask)
    for c in closing:
        c.close() if hasattr(c, "close") else posix.close(c)


def _husk_fork(closing):
    try:
        pid = posix.fork()
    except OSError as e:
        return -e.errno
    if pid == 0:
        _husk_leave(closing)
    return pid


def _husk_warm():
    """The spare touches ahead what each call's setup does (a reference count written is a
    page copied), so the call does not wait for those copies."""
    import os

    env = os.environb
    for k, v in list(env.items()):
        env.get(k) != v
    for name in list(sys.modules):
        sys.modules.get(name)


def _husk_serve(wait_first):
    """The fork server's loop; returns in each call's process only. The next call's process is
    forked ahead (the spare) when the zygote is idle, so a call waits for no fork: it is handed
    to the spare. A run flagged _ZYGOTE returns too, to serve again as an instance's zygote
    (stdio, CGI: its calls are forked from it); such a zygote
    (wait_first) forks no spare before its first message: it is moved into its instance's
    cgroup before that, and a child would stay behind."""
    ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, 3)
    buf = bytearray(_HDR.size + 256 * 1024)
    anc = _socket.CMSG_SPACE(3 * 4)
    wake_r, wake_w = posix.pipe()
    posix.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, lambda *_: None)
    global _husk_mask  # the calls get the mask the zygote was given; it hears SIGCHLD
    _husk_mask = _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGCHLD})
    poll = select.poll()
    poll.register(3, select.POLLIN)
    poll.register(wake_r, select.POLLIN)
    loop = (ctl, wake_r, wake_w)
    calls = {}  # pid: run id
    spare = None  # (pid, its socket)
    while True:
        ready = [fd for fd, _ in poll.poll(0 if spare is None and not wait_first else None)]
        if not ready:  # idle, no spare
            mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
            pid = _husk_fork(loop + (mine,))
            if pid == 0:
                _husk_warm()
                run = _husk_receive(theirs, buf, anc)
                if run is None or run[0] is None:
                    posix._exit(0)  # the zygote is gone
                theirs.close()
                return run[1], run[2], run[3]
            theirs.close()
            spare = (pid, mine) if pid > 0 else mine.close()
            continue
        if wake_r in ready:
            posix.read(wake_r, 512)
            while True:
                try:
                    pid, status = posix.waitpid(-1, posix.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in calls:
                    ctl.send(_HDR.pack(_EXIT, calls.pop(pid), status, 0))
                elif spare and spare[0] == pid:
                    spare = spare[1].close()
        if 3 not in ready:
            continue
        wait_first = False
        run = _husk_receive(ctl, buf, anc)
        if run is None:
            posix._exit(0)  # the agent is gone
        rid, env, fds, flags = run
        if rid is None:
            continue
        pid = -1
        if spare:
            try:
                spare[1].sendmsg(
                    [_HDR.pack(_RUN, rid, flags & (_GATED | _ZYGOTE), len(env)), env],
                    [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)],
                )
                pid = spare[0]
            except OSError:
                pass  # it died: a fork now
            spare = spare[1].close()
        if pid < 0:
            pid = _husk_fork(loop)
            if pid == 0:
                return env, fds, flags
        for fd in fds:
            posix.close(fd)
        ctl.send(_HDR.pack(_STARTED, rid, pid, 0))
        if pid > 0:
            calls[pid] = rid


def _husk_call(env, fds, flags, argv, here):
    """Become the call's process: its stdio, environment, argv, sys.path and new random state."""
    import os

    if flags & _GATED:  # the daemon's byte: the run is in its instance's cgroup now
        try:
            passed = posix.read(fds[0], 1)
        except OSError:
            passed = b""
        if not passed:
            posix._exit(70)
    for i in range(3):
        posix.dup2(fds[i], i)
    for fd in fds:
        if fd > 2:
            posix.close(fd)
    new = {}
    for kv in env.split(b"\0"):
        k, eq, v = kv.partition(b"=")
        if eq and k:
            new[k] = v
    environ = os.environb  # changed where the call's differs: fewer pages written
    for k in [k for k in environ if k not in new]:
        del environ[k]
    for k, v in new.items():
        if environ.get(k) != v:
            environ[k] = v
    sys.argv[:] = argv
    for name, reseed in (("random", "seed"), ("numpy.random", "seed")):
        m = sys.modules.get(name)
        if m is not None and hasattr(m, reseed):
            getattr(m, reseed)()


def _husk_main():
    import os

    argv = sys.argv[1:]
    if not argv:
        sys.exit("husk zygote: no script")
    script = argv[0]
    here = os.path.dirname(os.path.realpath(script))
    if sys.path and sys.path[0] == "":  # `-c` put the working directory first: the script's
        sys.path[0] = here
    code, oserr, err = _husk_load(script)
    if code is not None:
        _husk_preload(script, here)
    for f in (sys.stdout, sys.stderr):  # nothing of the template's output goes to a call
        try:
            f.flush()
        except BaseException:
            pass
    gc.freeze()  # what is loaded now is shared: the calls' collections leave its pages alone
    env, fds, flags = _husk_serve(False)
    while flags & _ZYGOTE:  # an instance's zygote: its socket on fd 3, its log on 1 and 2
        for i, fd in ((3, fds[0]), (1, fds[1]), (2, fds[2])):
            posix.dup2(fd, i)
        for fd in set(fds):
            if fd > 3:
                posix.close(fd)
        env, fds, flags = _husk_serve(True)
    _husk_call(env, fds, flags, argv, here)
    return script, code, oserr, err


_husk = _husk_main()
_husk_self = sys.modules["__main__"]


def _husk_report(e):
    """An uncaught exception, its traceback starting at the script as without the zygote."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next
    sys.excepthook(type(e), e.with_traceback(tb), tb)


def _husk_exit_code(e):
    """What Python makes of a SystemExit."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        print(e.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _husk_run(script, code, oserr, err):
    if oserr is not None:
        print(
            "%s: can't open file %r: [Errno %d] %s"
            % (sys.orig_argv[0], script, oserr.errno, oserr.strerror),
            file=sys.stderr,
        )
        return 2
    if err is not None:
        sys.excepthook(type(err), err, None)
        return 1
    main = type(sys)("__main__")
    main.__file__ = script
    main.__cached__ = None
    main.__builtins__ = __builtins__
    main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
        return 0
    except SystemExit as e:
        return _husk_exit_code(e)
    except BaseException as e:
        _husk_report(e)
        return 1


def _husk_exit(status):
    import atexit

    main = sys.modules["__main__"]

    for step in (
        lambda: sys.modules["threading"]._shutdown() if "threading" in sys.modules else None,
        atexit._run_exitfuncs,
        lambda: sys.modules["__main__"].__dict__.clear() if main is not _husk_self else None,
    ):
        try:
            step()
        except SystemExit as e:
            status = _husk_exit_code(e)
        except BaseException as e:
            _husk_report(e)
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            status = status or 120  # as Python when it cannot flush at exit
    posix._exit(status)


_husk_exit(_husk_run(*_husk))
