/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network layer: parsing of prefixes, published ports and egress rules, resolv.conf and
 * hosts; then, as root, the bridge itself inside a network namespace this test makes for
 * itself (it plays the host): prepared namespaces, published ports, leases, crash reclaim.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "husk/net.h"

/* The call's result and the error it filled (read after the call, hence the pointer). */
static void
expect_error(int r, struct husk_error **e, const char *text)
{
    if (r >= 0 || *e == NULL)
        fail_msg("expected an error saying '%s', got %d", text, r);
    if (strstr((*e)->msg, text) == NULL)
        fail_msg("error '%s' does not say '%s'", (*e)->msg, text);
    husk_error_free(*e);
    *e = NULL;
}

static void
test_cidr(void **state)
{
    struct sbx_cidr c, d;
    struct husk_error *e = NULL;
    char buf[64];
    assert_int_equal(sbx_cidr_parse("10.77.0.0/16", &c, NULL), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 16);
    sbx_cidr_format(&c, buf, sizeof(buf));
    assert_string_equal(buf, "10.77.0.0/16");
    assert_int_equal(sbx_cidr_parse("10.77.3.4", &d, NULL), 0);
    assert_int_equal(d.prefix, 32);
    assert_true(sbx_cidr_overlaps(&c, &d));
    assert_int_equal(sbx_cidr_parse("10.78.0.0/16", &d, NULL), 0);
    assert_false(sbx_cidr_overlaps(&c, &d));
    assert_int_equal(sbx_cidr_parse("fd00::/8", &d, NULL), 0);
    assert_int_equal(d.family, AF_INET6);
    assert_false(sbx_cidr_overlaps(&c, &d));
    expect_error(sbx_cidr_parse("10.77.0.1/16", &c, &e), &e, "host bits set");
    expect_error(sbx_cidr_parse("10.0.0.0/33", &c, &e), &e, "0 to 32");
    expect_error(sbx_cidr_parse("10.0.0/8", &c, &e), &e, "no IP address");
    expect_error(sbx_cidr_parse("", &c, &e), &e, "not an address");
    expect_error(sbx_cidr_parse("10.0.0.0/", &c, &e), &e, "0 to 32");
    (void)state;
}

static void
test_publish(void **state)
{
    struct sbx_net_publish p;
    struct husk_error *e = NULL;
    char buf[64];
    assert_int_equal(sbx_net_publish_parse("8080:80", &p, NULL), 0);
    assert_int_equal(p.proto, IPPROTO_TCP);
    assert_int_equal(p.host_ip.s_addr, INADDR_ANY);
    assert_int_equal(p.host_port, 8080);
    assert_int_equal(p.port, 80);
    assert_int_equal(sbx_net_publish_parse("127.0.0.1:53:5353/udp", &p, NULL), 0);
    assert_int_equal(p.proto, IPPROTO_UDP);
    sbx_net_publish_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "udp 127.0.0.1:53 -> 5353");
    expect_error(sbx_net_publish_parse("80", &p, &e), &e, "HOSTPORT:PORT");
    expect_error(sbx_net_publish_parse("1:2:3:4", &p, &e), &e, "HOSTPORT:PORT");
    expect_error(sbx_net_publish_parse("0:80", &p, &e), &e, "not a port");
    expect_error(sbx_net_publish_parse("80:65536", &p, &e), &e, "not a port");
    expect_error(sbx_net_publish_parse("host:80:80", &p, &e), &e, "not an IPv4 address");
    expect_error(sbx_net_publish_parse("80:80/sctp", &p, &e), &e, "neither tcp nor udp");
    (void)state;
}

static void
test_egress_rule(void **state)
{
    struct sbx_egress_rule r;
    struct husk_error *e = NULL;
    assert_int_equal(sbx_egress_rule_parse("10.0.0.0/8", &r, NULL), 0);
    assert_false(r.deny);
    assert_int_equal(r.dst.prefix, 8);
    assert_int_equal(r.port, 0);
    assert_int_equal(r.proto, 0);
    assert_int_equal(sbx_egress_rule_parse("!10.1.2.3:53/udp", &r, NULL), 0);
    assert_true(r.deny);
    assert_int_equal(r.dst.prefix, 32);
    assert_int_equal(r.port, 53);
    assert_int_equal(r.proto, IPPROTO_UDP);
    assert_int_equal(sbx_egress_rule_parse("10.0.0.0/8:443/tcp", &r, NULL), 0);
    assert_int_equal(r.port, 443);
    assert_int_equal(r.proto, IPPROTO_TCP);
    assert_int_equal(sbx_egress_rule_parse("[fd00::/64]:443", &r, NULL), 0);
    assert_int_equal(r.dst.family, AF_INET6);
    assert_int_equal(r.dst.prefix, 64);
    assert_int_equal(r.port, 443);
    assert_int_equal(sbx_egress_rule_parse("::1", &r, NULL), 0);
    assert_int_equal(r.dst.prefix, 128);
    expect_error(sbx_egress_rule_parse("10.0.0.0/8:0", &r, &e), &e, "not a port");
    expect_error(sbx_egress_rule_parse("[fd00::1:443", &r, &e), &e, "expected [IPV6");
    expect_error(sbx_egress_rule_parse("example.com:443", &r, &e), &e, "egress rule");
    (void)state;
}

static void
test_etc_files(void **state)
{
    char *resolv = sbx_net_resolv_conf("# a comment\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n"
                                       "nameserver ::1\nsearch example.org\nsortlist x\n"
                                       "options edns0\n");
    assert_non_null(strstr(resolv, "nameserver 10.1.1.1\n"));
    assert_null(strstr(resolv, "127.0.0.53"));
    assert_null(strstr(resolv, "::1"));
    assert_null(strstr(resolv, "sortlist"));
    assert_non_null(strstr(resolv, "search example.org\n"));
    assert_non_null(strstr(resolv, "options edns0\n"));
    free(resolv);
    struct in_addr a = {.s_addr = htonl(0x0a4d0002)};
    char *hosts = sbx_net_hosts("web", &a);
    assert_non_null(strstr(hosts, "127.0.0.1\tlocalhost\n"));
    assert_non_null(strstr(hosts, "10.77.0.2\tweb\n"));
    free(hosts);
    hosts = sbx_net_hosts(NULL, NULL);
    assert_null(strstr(hosts, "10.77"));
    free(hosts);
    (void)state;
}

/* ---- the bridge, in a network namespace of our own ---- */

static bool in_own_netns;

static int
enter_netns(void **state)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
        return 0; /* the tests below skip */
    in_own_netns = sbx_net_loopback_up(-1, NULL) == 0;
    return fx_new(state, "net", false);
}

static int
leave(void **state)
{
    return *state ? fx_free(state) : 0;
}

static struct sbx_net *
open_net(struct fx *fx)
{
    struct sbx_net_opts o = {.state_dir = fx->dir};
    struct sbx_net *n = NULL;
    assert_int_equal(sbx_net_open(&o, &n, NULL), 0);
    return n;
}

/* Connect from inside the namespace at PATH to a listener on the bridge's address. */
static int
connect_from(const char *path, int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "10.77.0.1", &sa.sin_addr);
        if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
            _exit(2);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        _exit(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
listen_on_gateway(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "10.77.0.1", &sa.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s, 8), 0);
    return s;
}

static bool
store_exists(struct fx *fx)
{
    struct stat st;
    cleanup_free char *p = xasprintf("%s/.network", fx->dir);
    return stat(p, &st) == 0;
}

static void
test_prepared_namespaces(void **state)
{
    struct fx *fx = *state;
    struct husk_error *e = NULL;
    if (!in_own_netns)
        skip();
    struct sbx_net *n = open_net(fx);
    struct sbx_netns *a = NULL, *b = NULL;
    assert_int_equal(sbx_netns_prepare(n, "pool-a", &a, NULL), 0);
    assert_int_equal(sbx_netns_prepare(n, "pool-b", &b, NULL), 0);
    assert_int_not_equal(a->lease->addr.s_addr, b->lease->addr.s_addr);
    assert_int_not_equal(if_nametoindex("husk0"), 0);
    assert_int_not_equal(if_nametoindex(a->lease->host_ifname), 0);
    /* The sandbox side works: address, route, the bridge reachable. */
    int l = listen_on_gateway(7000);
    assert_int_equal(connect_from(a->path, 7000), 0);
    assert_int_equal(connect_from(b->path, 7000), 0);
    close(l);
    /* Ports at hand-off; the same host port twice is refused and changes nothing. */
    struct sbx_net_publish p;
    assert_int_equal(sbx_net_publish_parse("8080:80", &p, NULL), 0);
    assert_int_equal(sbx_net_publish_add(n, "pool-a", &p, 1, NULL), 0);
    expect_error(sbx_net_publish_add(n, "pool-b", &p, 1, &e), &e, "already published by 'pool-a'");
    expect_error(sbx_net_publish_add(n, "nobody", &p, 1, &e), &e, "holds no address");
    /* The namespace dies with its last user: the veth goes with it, the lease stays. */
    char ifa[16];
    memcpy(ifa, a->lease->host_ifname, sizeof(ifa));
    sbx_netns_free(a);
    for (int i = 0; i < 500 && if_nametoindex(ifa) != 0; i++)
        usleep(10000);
    assert_int_equal(if_nametoindex(ifa), 0);
    assert_int_equal(sbx_net_release(n, "pool-a", NULL), 0);
    assert_int_equal(sbx_net_release(n, "pool-a", NULL), 0); /* twice: nothing to do */
    assert_true(store_exists(fx));
    assert_int_equal(sbx_net_release(n, "pool-b", NULL), 0);
    /* The last lease took the bridge, its veth and the store with it. */
    assert_int_equal(if_nametoindex("husk0"), 0);
    assert_int_equal(if_nametoindex(b->lease->host_ifname), 0);
    assert_false(store_exists(fx));
    sbx_netns_free(b);
    sbx_net_free(n);
}

static void
test_stale_lease_is_reclaimed(void **state)
{
    struct fx *fx = *state;
    if (!in_own_netns)
        skip();
    struct sbx_net *n = open_net(fx);
    /* A process takes a lease and dies before any veth exists, as a killed husk would. */
    pid_t pid = fork();
    if (pid == 0) {
        struct sbx_net_lease *l = NULL;
        _exit(sbx_net_acquire(n, "ghost", NULL, 0, &l, NULL) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(store_exists(fx));
    assert_int_not_equal(if_nametoindex("husk0"), 0);
    /* The next one to look reclaims it, and with nothing left, the bridge and store go. */
    assert_int_equal(sbx_net_gc(n, NULL), 0);
    assert_false(store_exists(fx));
    assert_int_equal(if_nametoindex("husk0"), 0);
    /* A live holder (this process) keeps its lease through a gc. */
    struct sbx_net_lease *l = NULL;
    assert_int_equal(sbx_net_acquire(n, "alive", NULL, 0, &l, NULL), 0);
    assert_int_equal(sbx_net_gc(n, NULL), 0);
    assert_true(store_exists(fx));
    struct husk_error *e = NULL;
    expect_error(sbx_net_acquire(n, "alive", NULL, 0, &l, &e), &e, "holds an address already");
    assert_int_equal(sbx_net_release(n, "alive", NULL), 0);
    assert_false(store_exists(fx));
    sbx_net_lease_free(l);
    sbx_net_free(n);
}

int
main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_egress_rule),
        cmocka_unit_test(test_etc_files),
    };
    const struct CMUnitTest bridge[] = {
        cmocka_unit_test(test_prepared_namespaces),
        cmocka_unit_test(test_stale_lease_is_reclaimed),
    };
    int r = cmocka_run_group_tests(pure, NULL, NULL);
    return r + cmocka_run_group_tests(bridge, enter_netns, leave);
}
