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
    else {
        fprintf(stderr, "usage: probe [info|sysctl NAME|write PATH|read PATH|stat PATH|exit N|"
                        "kill-self SIGNAL|sleep SECONDS]\n");
        return 2;
    }
    fflush(stdout);
    return rc;
}
