/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Functions on the network. By default an instance has loopback only. A function deployed
 * with "network": "egress" gets an address on husk's bridge (a veth pair, NAT out) and an
 * allow-list: "egress": ["CIDR[:PORT][/tcp|/udp]", ...], enforced by cgroup BPF programs on
 * the instance's cgroup before its first instruction (a connect or send anywhere else fails at
 * once with EPERM; raw sockets are refused), plus "egress_dns": "IP" to resolve names through
 * that resolver (its port 53 allowed, and /etc/resolv.conf naming it when the root has one).
 * The host's loopback services, the admin API among them, stay out of reach unless a rule
 * names them. The bridge, leases and NAT are the engine's (include/husk/net.h), kept under
 * STATE/.network; a lease is released when its instance is gone, and a daemon that was killed
 * reclaims stale ones at the next acquire. The resolv.conf files live under
 * /run/husk-functions/serve-HASH (the state directory is closed to the functions' users).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "husk/net.h"
#include "syscalls.h"
#include "util.h"

struct faas_egress {
    struct sbx_net *net; /* opened on first use */
    pthread_mutex_t lock;
};

/* ---- the deploy */

static int
rules_field(json_t *list, struct faas_function *f, struct husk_error **err)
{
    size_t i;
    json_t *v;
    if (!json_is_array(list))
        return husk_err(err, 0, "field 'egress': must be a list of \"CIDR[:PORT][/tcp|/udp]\"");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v))
            return husk_err(err, 0, "field 'egress': item %zu is not a string", i);
        int r = sbx_egress_rule_parse(json_string_value(v), &f->egress[f->n_egress], err);
        if (r < 0)
            return husk_err_prefix(err, "field 'egress': ");
        f->n_egress++;
    }
    return 0;
}

/* The resolver: its port 53 (udp and tcp) allowed; /etc/resolv.conf names it. */
static int
dns_field(const char *ip, struct faas_function *f, struct husk_error **err)
{
    struct in_addr a4;
    struct in6_addr a6;
    bool v6 = strchr(ip, ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, ip, &a6) != 1 : inet_pton(AF_INET, ip, &a4) != 1)
        return husk_err(err, 0, "field 'egress_dns': '%s' is not an IP address", ip);
    const char *protos[] = {"udp", "tcp"};
    for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
        cleanup_free char *rule = xasprintf(v6 ? "[%s]:53/%s" : "%s:53/%s", ip, protos[i]);
        if (sbx_egress_rule_parse(rule, &f->egress[f->n_egress++], err) < 0)
            return husk_err_prefix(err, "field 'egress_dns': ");
    }
    f->egress_dns = xstrdup(ip);
    return 0;
}

/* A regular file at path in the function's root (a directory, or an image mounted detached
 * for the look). */
static bool
root_has_file(struct faas_function *f, const char *path, struct husk_error **err)
{
    cleanup_fd int image = f->root_is_image ? sbx_rootfs_image_mount(f->cfg->sbx, err) : -1;
    int root = f->root_is_image ? image : f->root_fd;
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    cleanup_fd int fd = root >= 0 ? sys_openat2(root, path, &how) : -1;
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* /etc/resolv.conf over the root's own: a file of the daemon's under STATE/net. */
static int
resolv_conf(struct faas_function *f, const struct faas_deploy_ctx *dc, struct husk_error **err)
{
    struct husk_error *ignored = NULL;
    bool has = root_has_file(f, "/etc/resolv.conf", &ignored);
    husk_error_free(ignored);
    if (!has)
        return 0; /* nothing to cover: the program gets the resolver some other way */
    if (dc->policy->runtime_dir == NULL)
        return husk_err(err, 0, "field 'egress_dns': no runtime directory for resolv.conf");
    /* where the function's own user can reach it: not the state directory (0700) */
    cleanup_free char *dir = xasprintf("%s/net", dc->policy->runtime_dir);
    cleanup_free char *path = xasprintf("%s/resolv-%s.conf", dir, f->egress_dns);
    cleanup_free char *text = xasprintf("nameserver %s\n", f->egress_dns);
    mode_t old = umask(022);
    int r = mkdir_p(dir, 0755);
    umask(old);
    cleanup_fd int fd = r < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
        return husk_err(err, errno, "write '%s'", path);
    struct sbx_config *c = f->cfg->sbx;
    c->mounts = xrealloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));
    c->mounts[c->n_mounts++] =
        (struct sbx_mount){.destination = xstrdup("/etc/resolv.conf"),
                           .type = xstrdup("bind"),
                           .source = steal_ptr(&path),
                           .flags = MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC};
    return 0;
}

int
faas_egress_parse(json_t *root, struct faas_function *f, const struct faas_deploy_ctx *dc,
                  struct husk_error **err)
{
    json_t *mode = json_object_get(root, "network"), *list = json_object_get(root, "egress");
    json_t *dns = json_object_get(root, "egress_dns");
    const char *m = mode ? json_string_value(mode) : "none";
    if (m == NULL || (strcmp(m, "none") && strcmp(m, "egress")))
        return husk_err(err, 0,
                        "field 'network': must be \"none\" (loopback only) or "
                        "\"egress\" (the bridge, with an allow-list)");
    f->egress_on = strcmp(m, "egress") == 0;
    if (!f->egress_on && (list || dns))
        return husk_err(err, 0, "field '%s': needs \"network\": \"egress\"",
                        list ? "egress" : "egress_dns");
    if (!f->egress_on)
        return 0;
    if (dns && !json_is_string(dns))
        return husk_err(err, 0, "field 'egress_dns': must be an IP address");
    f->egress = xcalloc(json_array_size(list) + 2, sizeof(*f->egress)); /* + the resolver's */
    int r = list ? rules_field(list, f, err) : 0;
    if (r == 0 && dns)
        r = dns_field(json_string_value(dns), f, err);
    if (r == 0 && dns)
        r = resolv_conf(f, dc, err);
    return r;
}

/* ---- instances: on a work thread */

static struct sbx_net *
bridge(struct faas_server *s, struct husk_error **err)
{
    struct faas_egress *e = s->egress;
    if (e->net == NULL) {
        struct sbx_net_opts o = {.state_dir = s->opts->state_dir};
        if (sbx_net_open(&o, &e->net, err) < 0)
            return NULL;
    }
    return e->net;
}

/* Before the spawn: the allow-list on the instance's cgroup, so its first instruction is
 * covered. */
int
faas_egress_attach(struct faas_server *s, struct faas_instance *in, struct husk_error **err)
{
    struct faas_function *f = in->fn;
    if (!f->egress_on)
        return 0;
    struct sbx_egress *eg = NULL;
    int r = sbx_egress_attach(sbx_cgroup_spawn_fd(in->cg), f->egress, f->n_egress, &eg, err);
    sbx_egress_free(eg); /* the programs stay on the cgroup until it is removed */
    return r < 0 ? husk_err_prefix(err, "instance %s: the egress allow-list: ", in->id) : 0;
}

/* After the spawn: an address on the bridge for the instance's network namespace. */
int
faas_egress_connect(struct faas_server *s, struct faas_instance *in, struct husk_error **err)
{
    struct faas_egress *e = s->egress;
    struct sbx_net_lease *lease = NULL;
    pthread_mutex_lock(&e->lock);
    struct sbx_net *net = bridge(s, err);
    int r = net ? sbx_net_acquire(net, in->id, NULL, 0, &lease, err) : -EIO;
    if (r == 0) {
        in->leased = true;
        r = sbx_net_attach(net, lease, in->netns_fd, err);
    }
    pthread_mutex_unlock(&e->lock);
    sbx_net_lease_free(lease);
    return r < 0 ? husk_err_prefix(err, "instance %s: its network: ", in->id) : 0;
}

struct release_job {
    struct faas_work work;
    struct faas_server *s;
    char id[128];
    struct husk_error *err;
};

static void
release_run(struct faas_work *w)
{
    struct release_job *j = container_of(w, struct release_job, work);
    struct faas_egress *e = j->s->egress;
    pthread_mutex_lock(&e->lock);
    struct sbx_net *net = bridge(j->s, &j->err);
    if (net)
        sbx_net_release(net, j->id, &j->err);
    pthread_mutex_unlock(&e->lock);
}

static void
release_done(struct faas_server *s, struct faas_work *w)
{
    struct release_job *j = container_of(w, struct release_job, work);
    if (j->err) {
        cleanup_free char *msg = husk_error_string(j->err);
        faas_server_log(s, "warning", "instance %s: release its address: %s", j->id, msg);
        husk_error_free(j->err);
    }
    free(j);
}

/* The instance is gone (its namespace, and the veth with it): its lease goes, off the loop. */
void
faas_egress_release(struct faas_server *s, struct faas_instance *in)
{
    if (!in->leased)
        return;
    in->leased = false;
    struct release_job *j = xcalloc(1, sizeof(*j));
    j->work.run = release_run;
    j->work.done = release_done;
    j->s = s;
    snprintf(j->id, sizeof(j->id), "%s", in->id);
    faas_work_submit(s, &j->work);
}

void
faas_egress_open(struct faas_server *s)
{
    s->egress = xcalloc(1, sizeof(*s->egress));
    pthread_mutex_init(&s->egress->lock, NULL);
}

/* At the stop, after the work threads: the bridge goes with its last lease. */
void
faas_egress_close(struct faas_server *s)
{
    struct faas_egress *e = s->egress;
    if (e == NULL)
        return;
    struct husk_error *err = NULL;
    if (e->net)
        sbx_net_gc(e->net, &err);
    husk_error_free(err);
    sbx_net_free(e->net);
    pthread_mutex_destroy(&e->lock);
    free(e);
    s->egress = NULL;
}
