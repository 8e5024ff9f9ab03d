/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net-bench: what a bridge network costs a sandbox, through the engine's API, in a network
 * namespace of its own that plays the host (nothing outside it changes).
 *
 *   build/net-bench [-n N]      N sandboxes per row (default 200), rows interleaved
 *   build/net-bench --pool N STATE_DIR   prepare N namespaces in the caller's network namespace
 *                               under STATE_DIR's lease store, print their paths one a line,
 *                               release them all at EOF on stdin (start_bench.py's pool)
 *
 * Each timed sample is sbx_spawn + start + wait of /bin/true in a new network namespace:
 *   netns       loopback only: the namespace alone
 *   bridge      + sbx_net_acquire before spawn and sbx_net_attach from on_created (no pool)
 *   prepared    joins a namespace sbx_netns_prepare made beforehand (a pool's member)
 *   + publish   prepared, plus sbx_net_publish_add of one port at hand-off
 * and, untimed in the rows above, what the pool pays off the warm path: prepare and release.
 * A namespace is destroyed by the kernel in the background after its last user (and deleting a
 * veth waits for RCU grace periods): each sample starts after a 10 ms gap, so that one row's
 * teardown is not billed to the next.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "husk/net.h"
#include "husk/sandbox.h"
#include "util.h"

enum {
    ROW_NETNS,
    ROW_BRIDGE,
    ROW_PREPARED,
    ROW_PUBLISH,
    ROW_PUBLISH_ADD,
    ROW_PREPARE,
    ROW_RELEASE,
    ROWS
};
static const char *const row_names[ROWS] = {
    "netns (loopback only)",     "bridge, no pool",        "bridge, prepared netns",
    "prepared + publish_add",    "  of which publish_add", "  pool: prepare (off path)",
    "  pool: release (off path)"};

struct attach_ctx {
    struct sbx_net *net;
    struct sbx_net_lease *lease;
};

static int
attach_on_created(pid_t pid, void *data, struct husk_error **err)
{
    struct attach_ctx *a = data;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return husk_err(err, 2, "open %s", path);
    return sbx_net_attach(a->net, a->lease, fd, err);
}

static int
run_true(const char *netns_path, struct attach_ctx *a, struct husk_error **err)
{
    static char *args[] = {"/bin/true", NULL};
    static char *env[] = {"PATH=/bin:/usr/bin", NULL};
    struct sbx_config cfg = {.process = {.args = args, .env = env, .umask = -1}};
    cfg.ns[SBX_NS_NET].enabled = true;
    cfg.ns[SBX_NS_NET].path = (char *)netns_path;
    struct sbx_spawn_opts o = sbx_spawn_opts_init();
    o.on_created = a ? attach_on_created : NULL;
    o.data = a;
    cleanup_(sbx_child_freep) struct sbx_child *c = NULL;
    int status = 0;
    int r = sbx_spawn(&cfg, &o, &c, err);
    if (r == 0)
        r = sbx_child_start(c, &cfg, err);
    if (r == 0)
        r = sbx_child_wait(c, &status, err);
    if (r == 0 && status != 0)
        r = husk_err(err, 0, "/bin/true exited with %d", status);
    return r;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double
median_ms(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return n ? (double)v[n / 2] / 1e6 : 0;
}

static uint64_t
gap(void)
{
    usleep(10000);
    return now_ns();
}

static int
one_round(struct sbx_net *net, int i, uint64_t *t[ROWS], struct husk_error **err)
{
    char owner[32];
    uint64_t t0;
    int r;
    /* netns only */
    t0 = gap();
    if ((r = run_true(NULL, NULL, err)) < 0)
        return r;
    t[ROW_NETNS][i] = now_ns() - t0;
    /* bridge without a pool */
    struct attach_ctx a = {.net = net};
    snprintf(owner, sizeof(owner), "b%d", i);
    t0 = gap();
    r = sbx_net_acquire(net, owner, NULL, 0, &a.lease, err);
    if (r == 0)
        r = run_true(NULL, &a, err);
    t[ROW_BRIDGE][i] = now_ns() - t0;
    sbx_net_lease_free(a.lease);
    if (r < 0 || (r = sbx_net_release(net, owner, err)) < 0)
        return r;
    /* prepared, with and without a port published at hand-off */
    for (int pub = 0; pub < 2; pub++) {
        cleanup_(sbx_netns_freep) struct sbx_netns *ns = NULL;
        struct sbx_net_publish p = {.proto = 6, .host_port = 8080, .port = 80};
        snprintf(owner, sizeof(owner), "p%d-%d", pub, i);
        t0 = gap();
        if ((r = sbx_netns_prepare(net, owner, &ns, err)) < 0)
            return r;
        t[ROW_PREPARE][2 * i + pub] = now_ns() - t0;
        t0 = gap();
        if (pub && (r = sbx_net_publish_add(net, owner, &p, 1, err)) < 0)
            return r;
        if (pub)
            t[ROW_PUBLISH_ADD][i] = now_ns() - t0;
        if ((r = run_true(ns->path, NULL, err)) < 0)
            return r;
        t[pub ? ROW_PUBLISH : ROW_PREPARED][i] = now_ns() - t0;
        t0 = gap();
        if ((r = sbx_net_release(net, owner, err)) < 0)
            return r;
        t[ROW_RELEASE][2 * i + pub] = now_ns() - t0;
    }
    return 0;
}

/* A pool for another program: its members live until our stdin closes. */
static int
pool(int n, const char *state_dir)
{
    struct husk_error *err = NULL;
    struct sbx_net_opts o = {.state_dir = state_dir};
    cleanup_(sbx_net_freep) struct sbx_net *net = NULL;
    struct sbx_netns **v = xcalloc((size_t)n, sizeof(*v));
    char owner[32], buf[64];
    int made = 0, r = sbx_net_open(&o, &net, &err);
    for (; r == 0 && made < n; made++) {
        snprintf(owner, sizeof(owner), "pool-%d", made);
        if ((r = sbx_netns_prepare(net, owner, &v[made], &err)) == 0)
            printf("%s\n", v[made]->path);
    }
    fflush(stdout);
    if (r < 0) {
        cleanup_free char *msg = husk_error_string(err);
        fprintf(stderr, "net-bench --pool: %s\n", msg);
        husk_error_free(err);
        made--;
    }
    while (r == 0 && read(0, buf, sizeof(buf)) > 0)
        ;
    for (int i = 0; i < made; i++) {
        snprintf(owner, sizeof(owner), "pool-%d", i);
        sbx_netns_free(v[i]);
        sbx_net_release(net, owner, NULL);
    }
    free(v);
    return r < 0;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--pool") == 0)
        return pool(atoi(argv[2]), argv[3]);
    int n = argc > 2 && strcmp(argv[1], "-n") == 0 ? atoi(argv[2]) : 200;
    char dir[] = "/tmp/husk-net-bench.XXXXXX";
    struct husk_error *err = NULL;
    if (n < 1 || geteuid() != 0) {
        fprintf(stderr, "usage: net-bench [-n N] (as root)\n");
        return 2;
    }
    /* Our own "host": the bridge, its table and every veth live and die in here. */
    if (unshare(CLONE_NEWNET) < 0 || sbx_net_loopback_up(-1, NULL) < 0 || !mkdtemp(dir)) {
        perror("net-bench: a private network namespace");
        return 1;
    }
    struct sbx_net_opts o = {.state_dir = dir};
    cleanup_(sbx_net_freep) struct sbx_net *net = NULL;
    if (sbx_net_open(&o, &net, &err) < 0)
        goto fail;
    /* One lease held throughout keeps the bridge and table up, as a running host would. */
    struct sbx_net_lease *keep = NULL;
    if (sbx_net_acquire(net, "keep", NULL, 0, &keep, &err) < 0)
        goto fail;
    uint64_t *t[ROWS];
    for (int r = 0; r < ROWS; r++)
        t[r] = xcalloc(2 * (size_t)n, sizeof(uint64_t));
    for (int i = -5; i < n; i++) /* five warm-up rounds */
        if (one_round(net, i < 0 ? 0 : i, t, &err) < 0)
            goto fail;
    printf("net-bench: %d sandboxes per row, /bin/true in a new network namespace, medians\n", n);
    double base = median_ms(t[ROW_NETNS], (size_t)n);
    for (int r = 0; r < ROWS; r++) {
        size_t cnt = r >= ROW_PREPARE ? 2 * (size_t)n : (size_t)n;
        double m = median_ms(t[r], cnt);
        if (r < ROW_PUBLISH_ADD)
            printf("%-28s %7.3f ms  (%+.3f ms vs netns)\n", row_names[r], m, m - base);
        else
            printf("%-28s %7.3f ms\n", row_names[r], m);
        free(t[r]);
    }
    sbx_net_lease_free(keep);
    if (sbx_net_release(net, "keep", &err) < 0)
        goto fail;
    rm_rf_at(AT_FDCWD, dir);
    return 0;
fail:;
    cleanup_free char *msg = husk_error_string(err);
    fprintf(stderr, "net-bench: %s\n", msg);
    husk_error_free(err);
    rm_rf_at(AT_FDCWD, dir);
    return 1;
}
