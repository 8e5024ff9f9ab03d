/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lease store: STATE_DIR/.network/BRIDGE, one file per address in use, named by the
 * address, plus "owner:OWNER" symlinks to find an owner's lease. Every change happens under an
 * flock on STORE/.lock. A lease says who took it (pid and start time) and what it publishes:
 *
 *     owner web-1
 *     holder 4242 123456
 *     publish tcp 0.0.0.0 8080 80
 *
 * It is live while the host end of its veth exists (the sandbox's namespace is alive) or its
 * holder runs (the sandbox is being set up); otherwise it is stale and reclaimed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net-internal.h"
#include "util.h"

#define LOCK_FILE    ".lock"
#define SUBNET_FILE  "network"
#define OWNER_PREFIX "owner:"

void
net_ifname(struct in_addr a, char buf[16])
{
    snprintf(buf, 16, "hk%08x", ntohl(a.s_addr));
}

void
net_mac(struct in_addr a, uint8_t mac[6])
{
    mac[0] = 0x02; /* locally administered, unicast */
    mac[1] = 0x68; /* 'h' */
    memcpy(mac + 2, &a.s_addr, 4);
}

int
lease_store_lock(const struct sbx_net *n, bool create, struct lease_store *st,
                 struct husk_error **err)
{
    st->dir_fd = st->lock_fd = -1;
    /* A releaser may remove the store between our open and our flock: then the lock file we
     * hold is no longer the one at the path, and we start over. */
    for (int attempt = 0; attempt < 100; attempt++) {
        int r = create ? mkdir_p(n->store, 0700) : 0;
        if (r < 0)
            return husk_err(err, -r, "create network state '%s'", n->store);
        cleanup_fd int dir = open(n->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0 && errno == ENOENT && !create)
            return -ENOENT;
        if (dir < 0)
            return husk_err(err, errno, "open network state '%s'", n->store);
        cleanup_fd int lock =
            openat(dir, LOCK_FILE, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
        if (lock < 0 && errno == ENOENT)
            continue;
        if (lock < 0)
            return husk_err(err, errno, "open '%s/%s'", n->store, LOCK_FILE);
        if (flock(lock, LOCK_EX) < 0)
            return husk_err(err, errno, "lock '%s/%s'", n->store, LOCK_FILE);
        struct stat held, now;
        if (fstat(lock, &held) == 0 && stat(n->store, &now) == 0 &&
            fstatat(dir, LOCK_FILE, &now, 0) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev) {
            struct stat d1, d2;
            if (fstat(dir, &d1) == 0 && stat(n->store, &d2) == 0 && d1.st_ino == d2.st_ino) {
                st->dir_fd = steal_fd(&dir);
                st->lock_fd = steal_fd(&lock);
                return 0;
            }
        }
    }
    return husk_err(err, EAGAIN, "lock network state '%s': it keeps being removed", n->store);
}

void
lease_store_unlock(struct lease_store *st)
{
    if (st->dir_fd >= 0)
        close(st->dir_fd);
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* drops the flock */
    st->dir_fd = st->lock_fd = -1;
}

void
lease_store_remove(const struct sbx_net *n, struct lease_store *st)
{
    unlinkat(st->dir_fd, SUBNET_FILE, 0);
    unlinkat(st->dir_fd, LOCK_FILE, 0);
    if (rmdir(n->store) == 0)
        rmdir(n->network_dir); /* fails while another bridge has a store: fine */
    lease_store_unlock(st);
}

static bool
is_lease_name(const char *name, struct in_addr *a)
{
    return name[0] != '.' && inet_pton(AF_INET, name, a) == 1;
}

static int
parse_publish(const char *line, struct sbx_net_publish *p)
{
    char proto[8], ip[INET_ADDRSTRLEN];
    unsigned hp, cp;
    if (sscanf(line, "publish %7s %15s %u %u", proto, ip, &hp, &cp) != 4 || hp == 0 || hp > 65535 ||
        cp == 0 || cp > 65535 || inet_pton(AF_INET, ip, &p->host_ip) != 1)
        return -EINVAL;
    p->proto = strcmp(proto, "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
    p->host_port = (uint16_t)hp;
    p->port = (uint16_t)cp;
    return 0;
}

struct holder {
    pid_t pid;
    unsigned long long start;
};

static int
lease_read(struct lease_store *st, const char *name, struct sbx_net_lease **out, struct holder *h)
{
    cleanup_free char *text = NULL;
    struct in_addr a;
    if (!is_lease_name(name, &a))
        return -EINVAL;
    int r = read_file_at(st->dir_fd, name, &text, NULL);
    if (r < 0)
        return r;
    struct sbx_net_lease *l = xcalloc(1, sizeof(*l));
    l->addr = a;
    net_ifname(a, l->host_ifname);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        struct sbx_net_publish p;
        int pid;
        unsigned long long start;
        if (str_has_prefix(line, "owner ") && l->owner == NULL) {
            l->owner = xstrdup(line + 6);
        } else if (sscanf(line, "holder %d %llu", &pid, &start) == 2 && h) {
            h->pid = pid;
            h->start = start;
        } else if (parse_publish(line, &p) == 0) {
            l->publish = xrealloc(l->publish, (l->n_publish + 1) * sizeof(p));
            l->publish[l->n_publish++] = p;
        }
    }
    if (l->owner == NULL)
        l->owner = xstrdup("");
    *out = l;
    return 0;
}

void
lease_list_free(struct sbx_net_lease **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sbx_net_lease_free(v[i]);
    free(v);
}

int
lease_list(struct lease_store *st, struct sbx_net_lease ***out, size_t *n, struct husk_error **err)
{
    int fd = dup(st->dir_fd);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    struct sbx_net_lease **v = NULL;
    size_t count = 0;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return husk_err(err, errno, "list network leases");
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        struct sbx_net_lease *l = NULL;
        if (lease_read(st, de->d_name, &l, NULL) < 0)
            continue;
        v = xrealloc(v, (count + 1) * sizeof(*v));
        v[count++] = l;
    }
    *out = v;
    *n = count;
    return 0;
}

int
lease_find(struct lease_store *st, const char *owner, struct sbx_net_lease **out)
{
    char target[64];
    cleanup_free char *link = xasprintf(OWNER_PREFIX "%s", owner);
    ssize_t len = readlinkat(st->dir_fd, link, target, sizeof(target) - 1);
    if (len < 0)
        return -errno;
    target[len] = '\0';
    struct sbx_net_lease *l = NULL;
    int r = lease_read(st, target, &l, NULL);
    if (r < 0)
        return r;
    if (strcmp(l->owner, owner) != 0) { /* a stale link to an address taken since */
        sbx_net_lease_free(l);
        unlinkat(st->dir_fd, link, 0);
        return -ENOENT;
    }
    *out = l;
    return 0;
}

static unsigned long long
start_time_of(pid_t pid)
{
    char path[64];
    cleanup_free char *text = NULL;
    unsigned long long start = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (pid <= 0 || read_file_at(AT_FDCWD, path, &text, NULL) < 0)
        return 0;
    const char *p = strrchr(text, ')'); /* the command may hold spaces */
    /* Each space passed is one field further: from the command (2) to starttime (22). */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
        return 0;
    return start;
}

int
lease_write(struct lease_store *st, const struct sbx_net_lease *l, bool create,
            struct husk_error **err)
{
    char name[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &l->addr, name, sizeof(name));
    pid_t self = getpid();
    size_t cap = 256 + strlen(l->owner) + l->n_publish * 64, len = 0;
    cleanup_free char *text = xcalloc(cap, 1);
    len += (size_t)snprintf(text, cap, "owner %s\nholder %d %llu\n", l->owner, self,
                            start_time_of(self));
    for (size_t i = 0; i < l->n_publish; i++) {
        const struct sbx_net_publish *p = &l->publish[i];
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &p->host_ip, ip, sizeof(ip));
        len += (size_t)snprintf(text + len, cap - len, "publish %s %s %u %u\n",
                                p->proto == IPPROTO_UDP ? "udp" : "tcp", ip, p->host_port, p->port);
    }
    if (create) {
        /* The address is ours once this file exists: O_EXCL makes that the collision check. */
        cleanup_fd int fd = openat(st->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return errno == EEXIST ? -EEXIST : husk_err(err, errno, "write lease %s", name);
        int r = write_all(fd, text, len);
        cleanup_free char *link = xasprintf(OWNER_PREFIX "%s", l->owner);
        unlinkat(st->dir_fd, link, 0);
        if (r == 0 && symlinkat(name, st->dir_fd, link) < 0)
            r = -errno;
        if (r < 0) {
            unlinkat(st->dir_fd, name, 0);
            return husk_err(err, -r, "write lease %s", name);
        }
        return 0;
    }
    int r = write_file_atomic(st->dir_fd, name, text, len);
    return r < 0 ? husk_err(err, -r, "write lease %s", name) : 0;
}

int
lease_remove(struct lease_store *st, const struct sbx_net_lease *l)
{
    char name[INET_ADDRSTRLEN], target[64];
    inet_ntop(AF_INET, &l->addr, name, sizeof(name));
    cleanup_free char *link = xasprintf(OWNER_PREFIX "%s", l->owner);
    ssize_t len = readlinkat(st->dir_fd, link, target, sizeof(target) - 1);
    if (len >= 0 && (size_t)len == strlen(name) && memcmp(target, name, (size_t)len) == 0)
        unlinkat(st->dir_fd, link, 0);
    if (unlinkat(st->dir_fd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

bool
lease_live(struct lease_store *st, const struct sbx_net_lease *l)
{
    char name[INET_ADDRSTRLEN];
    struct holder h = {0};
    struct sbx_net_lease *again = NULL;
    if (if_nametoindex(l->host_ifname) != 0)
        return true;
    inet_ntop(AF_INET, &l->addr, name, sizeof(name));
    if (lease_read(st, name, &again, &h) < 0)
        return false;
    sbx_net_lease_free(again);
    return h.pid > 0 && h.start != 0 && start_time_of(h.pid) == h.start;
}

int
lease_store_subnet(struct lease_store *st, char *buf, size_t len)
{
    cleanup_free char *text = NULL;
    buf[0] = '\0';
    int r = read_file_at(st->dir_fd, SUBNET_FILE, &text, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (sscanf(text, "subnet %63s", buf) != 1 || len < 64)
        buf[0] = '\0';
    return 0;
}

int
lease_store_set_subnet(struct lease_store *st, const char *subnet, struct husk_error **err)
{
    cleanup_free char *text = xasprintf("subnet %s\n", subnet);
    int r = write_file_atomic(st->dir_fd, SUBNET_FILE, text, strlen(text));
    return r < 0 ? husk_err(err, -r, "write network state") : 0;
}
