/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's network as the CLI sets it up: --network/--publish (or their annotations), the
 * lease and veth of the bridge, resolv.conf and hosts, the egress allow-list, and what `state`
 * shows and `delete` releases. The container's choice is kept in STATE/ID/network.json, written
 * before anything is acquired, so that delete can always release it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "container.h"
#include "husk/net.h"
#include "util.h"

#define NET_FILE "network.json"

enum net_mode { NET_KEEP, NET_NONE, NET_BRIDGE };

struct ctr_net {
    enum net_mode mode;
    const char *id;
    const char *bridge, *subnet; /* borrowed from the config's annotations */
    struct sbx_net_publish *publish;
    size_t n_publish;
    struct sbx_egress_rule *egress;
    size_t n_egress;
    struct sbx_net *net;
    struct sbx_net_lease *lease;
    struct sbx_egress *eg;
    bool acquired;
};

void
ctr_net_free(struct ctr_net *n)
{
    if (n == NULL)
        return;
    sbx_net_lease_free(n->lease);
    sbx_net_free(n->net);
    sbx_egress_free(n->eg);
    free(n->publish);
    free(n->egress);
    free(n);
}

void
ctr_net_freep(struct ctr_net **n)
{
    ctr_net_free(*n);
    *n = NULL;
}

static void
warn_cb(void *data, const char *msg)
{
    cli_log(data, "warning", "%s", msg);
}

static const char *
ann(const struct oci_config *cfg, const char *key)
{
    return json_string_value(json_object_get(cfg->annotations, key));
}

/* The flags become annotations: one place to read, and `state` shows what was asked. */
static void
flags_to_annotations(struct oci_config *cfg, const struct create_opts *o)
{
    if (o->network)
        json_object_set_new(cfg->annotations, OCI_ANN_NETWORK, json_string(o->network));
    if (o->publish.n) {
        size_t len = 1;
        for (size_t i = 0; i < o->publish.n; i++)
            len += strlen(o->publish.v[i]) + 1;
        cleanup_free char *all = xcalloc(len, 1);
        for (size_t i = 0; i < o->publish.n; i++)
            snprintf(all + strlen(all), len - strlen(all), "%s%s", i ? "," : "", o->publish.v[i]);
        json_object_set_new(cfg->annotations, OCI_ANN_PUBLISH, json_string(all));
    }
}

/* A comma-separated annotation, each item parsed by fn into an array of `size`-byte items. */
static int
parse_list(const struct oci_config *cfg, const char *key, size_t size,
           int (*fn)(const char *, void *, struct husk_error **), void **out, size_t *n,
           struct husk_error **err)
{
    const char *text = ann(cfg, key);
    *out = NULL;
    *n = 0;
    if (text == NULL || *text == '\0')
        return 0;
    cleanup_free char *copy = xstrdup(text);
    for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        *out = xrealloc(*out, (*n + 1) * size);
        int r = fn(t, (char *)*out + *n * size, err);
        if (r < 0)
            return husk_err_prefix(err, "%s: annotation '%s': ", cfg->path, key);
        (*n)++;
    }
    return 0;
}

static int
publish_fn(const char *s, void *out, struct husk_error **err)
{
    return sbx_net_publish_parse(s, out, err);
}

static int
egress_fn(const char *s, void *out, struct husk_error **err)
{
    return sbx_egress_rule_parse(s, out, err);
}

int
ctr_net_plan(struct cli *cli, const char *id, struct oci_config *cfg, const struct create_opts *o,
             struct ctr_net **out, struct husk_error **err)
{
    cleanup_(ctr_net_freep) struct ctr_net *n = xcalloc(1, sizeof(*n));
    n->id = id;
    flags_to_annotations(cfg, o);
    const char *mode = ann(cfg, OCI_ANN_NETWORK);
    if (mode == NULL || *mode == '\0')
        n->mode = NET_KEEP;
    else if (strcmp(mode, "none") == 0)
        n->mode = NET_NONE;
    else if (strcmp(mode, "bridge") == 0)
        n->mode = NET_BRIDGE;
    else
        return husk_err(err, 0, "network '%s': must be none or bridge (%s)", mode,
                        o->network ? "--network" : "annotation " OCI_ANN_NETWORK);
    int r = parse_list(cfg, OCI_ANN_PUBLISH, sizeof(*n->publish), publish_fn, (void **)&n->publish,
                       &n->n_publish, err);
    if (r == 0)
        r = parse_list(cfg, OCI_ANN_EGRESS, sizeof(*n->egress), egress_fn, (void **)&n->egress,
                       &n->n_egress, err);
    if (r < 0)
        return r;
    n->bridge = ann(cfg, OCI_ANN_NETWORK_BRIDGE);
    n->subnet = ann(cfg, OCI_ANN_NETWORK_SUBNET);
    if (n->mode != NET_BRIDGE && (n->n_publish || n->bridge || n->subnet))
        return husk_err(err, 0, "%s needs --network bridge",
                        n->n_publish ? "--publish" : "a bridge or subnet annotation");
    struct sbx_ns *ns = &cfg->sbx->ns[SBX_NS_NET];
    if (n->mode != NET_KEEP && ns->enabled && ns->path)
        return husk_err(err, 0, "--network %s: %s joins the network namespace '%s'", mode,
                        cfg->path, ns->path);
    if (n->mode != NET_KEEP)
        ns->enabled = true;
    if (n->mode == NET_BRIDGE) {
        struct sbx_net_opts no = {.state_dir = cli->root,
                                  .bridge = n->bridge,
                                  .subnet = n->subnet,
                                  .warn = warn_cb,
                                  .warn_data = cli};
        if ((r = sbx_net_open(&no, &n->net, err)) < 0)
            return r;
    }
    *out = steal_ptr(&n);
    return 0;
}

/* A file of the state dir bind-mounted read-only on DEST, unless the config mounts DEST. */
static int
add_etc_file(struct cli *cli, struct oci_config *cfg, const char *id, int dir_fd, const char *name,
             const char *dest, const char *text, struct husk_error **err)
{
    struct sbx_config *s = cfg->sbx;
    for (size_t i = 0; i < s->n_mounts; i++)
        if (strcmp(s->mounts[i].destination, dest) == 0)
            return 0;
    int r = write_file_atomic(dir_fd, name, text, strlen(text));
    if (r < 0)
        return husk_err(err, -r, "write %s of container '%s'", name, id);
    s->mounts = xrealloc(s->mounts, (s->n_mounts + 1) * sizeof(*s->mounts));
    s->mounts[s->n_mounts++] = (struct sbx_mount){
        .destination = xstrdup(dest),
        .type = xstrdup("bind"),
        .source = xasprintf("%s/%s/%s", cli->root, id, name),
        .flags = MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
    };
    return 0;
}

static int
save_net_json(int dir_fd, const struct ctr_net *n, struct husk_error **err)
{
    char a[INET_ADDRSTRLEN] = "", gw[INET_ADDRSTRLEN] = "";
    cleanup_json json_t *j = json_pack("{s:s}", "type", n->mode == NET_BRIDGE ? "bridge" : "none");
    if (n->net) {
        json_object_set_new(j, "bridge", json_string(n->bridge ? n->bridge : SBX_NET_BRIDGE));
        json_object_set_new(j, "subnet", json_string(n->subnet ? n->subnet : SBX_NET_SUBNET));
    }
    if (n->lease) {
        inet_ntop(AF_INET, &n->lease->addr, a, sizeof(a));
        inet_ntop(AF_INET, &n->lease->gateway, gw, sizeof(gw));
        json_object_set_new(j, "address", json_string(a));
        json_object_set_new(j, "prefix", json_integer(n->lease->prefix));
        json_object_set_new(j, "gateway", json_string(gw));
        json_object_set_new(j, "interface", json_string(n->lease->host_ifname));
        json_t *pub = json_array();
        for (size_t i = 0; i < n->lease->n_publish; i++) {
            const struct sbx_net_publish *p = &n->lease->publish[i];
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &p->host_ip, ip, sizeof(ip));
            json_array_append_new(pub,
                                  json_pack("{s:s, s:s, s:i, s:i}", "protocol",
                                            p->proto == IPPROTO_UDP ? "udp" : "tcp", "host_ip", ip,
                                            "host_port", p->host_port, "container_port", p->port));
        }
        json_object_set_new(j, "publish", pub);
    }
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    int r = write_file_atomic(dir_fd, NET_FILE, text, strlen(text));
    return r < 0 ? husk_err(err, -r, "write %s", NET_FILE) : 0;
}

int
ctr_net_setup(struct cli *cli, struct ctr_net *n, struct oci_config *cfg, int dir_fd,
              struct sbx_cgroup *cg, struct husk_error **err)
{
    int r = 0;
    if (n->n_egress) {
        if (cg == NULL)
            return husk_err(err, 0, "annotation %s needs a cgroup, and this container has none",
                            OCI_ANN_EGRESS);
        if ((r = sbx_egress_attach(sbx_cgroup_spawn_fd(cg), n->egress, n->n_egress, &n->eg, err)) <
            0)
            return r;
    }
    if (n->mode == NET_KEEP)
        return 0;
    /* Recorded first, so that a delete after a crash knows what to release. */
    if ((r = save_net_json(dir_fd, n, err)) < 0)
        return r;
    if (n->net) {
        if ((r = sbx_net_acquire(n->net, n->id, n->publish, n->n_publish, &n->lease, err)) < 0)
            return r;
        n->acquired = true;
        if ((r = save_net_json(dir_fd, n, err)) < 0)
            return r;
    }
    cleanup_free char *host = NULL;
    read_file_at(AT_FDCWD, "/etc/resolv.conf", &host, NULL);
    cleanup_free char *resolv = sbx_net_resolv_conf(host);
    cleanup_free char *hosts = sbx_net_hosts(cfg->sbx->hostname, n->lease ? &n->lease->addr : NULL);
    if (n->mode == NET_BRIDGE && (r = add_etc_file(cli, cfg, n->id, dir_fd, "resolv.conf",
                                                   "/etc/resolv.conf", resolv, err)) < 0)
        return r;
    return add_etc_file(cli, cfg, n->id, dir_fd, "hosts", "/etc/hosts", hosts, err);
}

int
ctr_net_on_created(struct ctr_net *n, pid_t pid, struct husk_error **err)
{
    char path[64];
    if (n == NULL || n->mode == NET_KEEP)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return husk_err(err, errno, "open the container's network namespace");
    int r = n->mode == NET_BRIDGE ? sbx_net_attach(n->net, n->lease, fd, err)
                                  : sbx_net_loopback_up(fd, err);
    return r < 0 ? husk_err_prefix(err, "container '%s': ", n->id) : 0;
}

void
ctr_net_release(struct cli *cli, struct ctr_net *n)
{
    struct husk_error *e = NULL;
    if (n == NULL || !n->acquired)
        return;
    if (sbx_net_release(n->net, n->id, &e) < 0) {
        cleanup_free char *msg = husk_error_string(e);
        cli_log(cli, "warning", "container '%s': release its network: %s", n->id, msg);
        husk_error_free(e);
    }
    n->acquired = false;
}

/* The container's network.json, or NULL. */
static json_t *
load_net_json(const struct container *c)
{
    cleanup_free char *text = NULL;
    if (read_file_at(c->dir_fd, NET_FILE, &text, NULL) < 0)
        return NULL;
    return json_loads(text, 0, NULL);
}

int
ctr_net_delete(struct cli *cli, const struct container *c, struct husk_error **err)
{
    cleanup_json json_t *j = load_net_json(c);
    const char *bridge = json_string_value(json_object_get(j, "bridge"));
    const char *subnet = json_string_value(json_object_get(j, "subnet"));
    if (bridge == NULL)
        return 0;
    struct sbx_net_opts no = {.state_dir = cli->root, .bridge = bridge, .subnet = subnet};
    cleanup_(sbx_net_freep) struct sbx_net *net = NULL;
    int r = sbx_net_open(&no, &net, err);
    if (r == 0)
        r = sbx_net_release(net, c->id, err);
    return r < 0 ? husk_err_prefix(err, "container '%s': ", c->id) : 0;
}

void
ctr_net_state(const struct container *c, json_t *state)
{
    json_t *j = load_net_json(c);
    if (j)
        json_object_set_new(state, "network", j);
}
