/* SPDX-License-Identifier: Apache-2.0 */
/* OCI hooks run by the CLI in the runtime's namespaces, with the state on stdin. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks.h"
#include "syscalls.h"
#include "util.h"

static int
run_one(const struct sbx_hook *h, const char *state, struct husk_error **err)
{
    char *const argv0[] = {h->path, NULL};
    char *const no_env[] = {NULL};
    posix_spawn_file_actions_t fa;
    int in[2];
    pid_t pid;
    int status;

    if (pipe2(in, O_CLOEXEC) < 0)
        return husk_err(err, errno, "pipe");
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    /* Its own process group: a timeout kills the hook and whatever it started. */
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    int r =
        posix_spawn(&pid, h->path, &fa, &attr, h->args ? h->args : argv0, h->env ? h->env : no_env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (r != 0) {
        close(in[1]);
        return husk_err(err, r, "run '%s'", h->path);
    }
    signal(SIGPIPE, SIG_IGN); /* a hook may exit without reading the state */
    write_all(in[1], state, strlen(state));
    close(in[1]);
    cleanup_fd int pidfd = sys_pidfd_open(pid, 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (pidfd >= 0 && h->timeout > 0 && poll(&p, 1, h->timeout * 1000) == 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return husk_err(err, 0, "'%s' timed out after %d s", h->path, h->timeout);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return husk_err(err, errno, "wait for '%s'", h->path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return husk_err(err, 0, "'%s' failed with %d", h->path, sbx_status_to_exit_code(status));
    return 0;
}

int
hooks_run(const struct oci_config *cfg, enum oci_hook_kind kind, const struct oci_state *st,
          const char *status, struct husk_error **err)
{
    if (cfg->n_hooks[kind] == 0)
        return 0;
    cleanup_json json_t *j = oci_state_json(st, status);
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    for (size_t i = 0; i < cfg->n_hooks[kind]; i++) {
        if (run_one(&cfg->hooks[kind][i], text, err) < 0)
            return husk_err_prefix(err, "%s hook %zu: ", oci_hook_name(kind), i);
    }
    return 0;
}

void
hooks_run_all(const struct oci_config *cfg, enum oci_hook_kind kind, const struct oci_state *st,
              const char *status, void (*warn)(void *data, struct husk_error *e), void *data)
{
    if (cfg->n_hooks[kind] == 0)
        return;
    cleanup_json json_t *j = oci_state_json(st, status);
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    for (size_t i = 0; i < cfg->n_hooks[kind]; i++) {
        struct husk_error *e = NULL;
        if (run_one(&cfg->hooks[kind][i], text, &e) < 0) {
            husk_err_prefix(&e, "%s hook %zu: ", oci_hook_name(kind), i);
            warn(data, e);
        }
    }
}

void
hooks_prepare_start(struct oci_config *cfg, const struct oci_state *st)
{
    struct sbx_config *s = cfg->sbx;
    if (cfg->n_hooks[OCI_HOOK_START_CONTAINER] == 0)
        return;
    /* The sandbox process runs these; it alone knows its host pid at that point, so the state
     * is cut in two around it. The pid recorded here (1) is only a marker. */
    struct oci_state copy = *st;
    copy.pid = 1;
    cleanup_json json_t *j = oci_state_json(&copy, "created");
    cleanup_free char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *mark = strstr(text, "\"pid\":1");
    if (mark == NULL)
        return;
    mark += strlen("\"pid\":");
    s->hook_state[0] = xstrndup(text, (size_t)(mark - text));
    s->hook_state[1] = xstrdup(mark + 1);
    s->start_hooks = cfg->hooks[OCI_HOOK_START_CONTAINER];
    s->n_start_hooks = cfg->n_hooks[OCI_HOOK_START_CONTAINER];
    cfg->hooks[OCI_HOOK_START_CONTAINER] = NULL; /* now owned by the sandbox config */
    cfg->n_hooks[OCI_HOOK_START_CONTAINER] = 0;
}
