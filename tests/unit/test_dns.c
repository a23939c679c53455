/* SPDX-License-Identifier: MIT */
/*
 * dns.c against a real unbound on loopback. Without LAB_DNS in the
 * environment the test starts itself again under the test lab
 * (scripts/lab/lab.sh, run from the repository root, as root), which
 * serves the zone below and stops unbound afterwards.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dns.h"

static const char lab_script[] =
    "source scripts/lab/lab.sh && lab_init /tmp && "
    "printf '%s\\n' "
    "'mx.test MX 20 b.mx.test' 'mx.test MX 10 a.mx.test' "
    "'mx.test MX 30 c.mx.test' "
    "'eq.test MX 10 a.eq.test' 'eq.test MX 20 last.eq.test' "
    "'eq.test MX 10 b.eq.test' 'eq.test MX 5 first.eq.test' "
    "'eq.test MX 10 c.eq.test' "
    "'nullmx.test MX 0 .' "
    "'txt.test TXT nomail' "
    "'host.test A 127.0.0.2' 'host.test A 127.0.0.3' "
    "'host.test AAAA ::1' "
    "'gone.test NXDOMAIN' 'broken.test SERVFAIL' "
    "'refused.test REFUSED' 'slow.test TIMEOUT' "
    ">\"$LAB_DIR/zone\" && "
    "for i in $(seq 10 29); do "
    "echo \"many.test MX $i mx$i.many.test\"; "
    "echo \"manyip.test A 127.0.1.$i\"; done >>\"$LAB_DIR/zone\" && "
    "lab_dns \"$LAB_DIR/zone\" && \"$0\"";

struct lookup {
    int calls;
    struct dns_answer ans;
};

static void
on_done(void *arg, const char *name, const struct dns_answer *ans)
{
    struct lookup *l = arg;

    (void)name;
    l->calls++;
    l->ans = *ans;
}

/* Runs one lookup to completion and returns its answer. */
static struct lookup
run(struct dns *d, const char *name, enum dns_type type)
{
    struct lookup l;

    memset(&l, 0, sizeof l);
    CHECK_INT(dns_query(d, name, type, on_done, &l), ST_OK);
    /* The callback is deferred to the loop, never run inside the call. */
    CHECK_INT(l.calls, 0);
    while (l.calls == 0)
        ev_run(EV_DEFAULT, EVRUN_ONCE);
    CHECK_INT(l.calls, 1);
    CHECK_INT(dns_pending(d), 0);
    return l;
}

static void
test_mx(struct dns *d)
{
    struct lookup l = run(d, "mx.test", DNS_TYPE_MX);

    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_mx, 3);
    CHECK_STR(l.ans.mx[0].host, "a.mx.test");
    CHECK_INT(l.ans.mx[0].pref, 10);
    CHECK_STR(l.ans.mx[1].host, "b.mx.test");
    CHECK_STR(l.ans.mx[2].host, "c.mx.test");
    CHECK_INT(l.ans.mx[2].pref, 30);

    l = run(d, "nullmx.test", DNS_TYPE_MX);
    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_mx, 1);
    CHECK_INT(l.ans.mx[0].pref, 0);
    CHECK_STR(l.ans.mx[0].host, "");
}

/*
 * RFC 5321 section 5.1: hosts of equal preference come in random order.
 * unbound rotates the records of an answer, which alone gives only the
 * three rotations of a, b and c; all six orders must show up, while the
 * hosts of preference 5 and 20 stay first and last every time.
 */
static void
test_mx_equal_shuffled(struct dns *d)
{
    static const char *const orders[6] = {"abc", "acb", "bac",
                                          "bca", "cab", "cba"};
    int seen[6] = {0};
    int kept = 0;

    for (int i = 0; i < 300; i++) {
        struct lookup l = run(d, "eq.test", DNS_TYPE_MX);
        char order[4];

        CHECK_INT(l.ans.n_mx, 5);
        if (l.ans.n_mx != 5)
            return;
        if (strcmp(l.ans.mx[0].host, "first.eq.test") == 0 &&
            strcmp(l.ans.mx[4].host, "last.eq.test") == 0 &&
            l.ans.mx[4].pref == 20)
            kept++;
        for (size_t k = 0; k < 3; k++) {
            CHECK_INT(l.ans.mx[k + 1].pref, 10);
            order[k] = l.ans.mx[k + 1].host[0];
        }
        order[3] = '\0';
        for (size_t k = 0; k < 6; k++) {
            if (strcmp(order, orders[k]) == 0)
                seen[k]++;
        }
    }
    CHECK_INT(kept, 300);
    for (size_t k = 0; k < 6; k++) {
        if (seen[k] == 0)
            fprintf(stderr, "test_dns: order %s never seen\n", orders[k]);
        CHECK(seen[k] > 0);
    }
}

static void
test_outcomes(struct dns *d)
{
    CHECK_INT(run(d, "txt.test", DNS_TYPE_MX).ans.outcome, DNS_NODATA);
    CHECK_INT(run(d, "gone.test", DNS_TYPE_MX).ans.outcome, DNS_NXDOMAIN);
    CHECK_INT(run(d, "sub.gone.test", DNS_TYPE_A).ans.outcome,
              DNS_NXDOMAIN);
    CHECK_INT(run(d, "broken.test", DNS_TYPE_MX).ans.outcome, DNS_SERVFAIL);
    CHECK_INT(run(d, "refused.test", DNS_TYPE_MX).ans.outcome,
              DNS_SERVFAIL);
    CHECK_INT(run(d, "slow.test", DNS_TYPE_MX).ans.outcome, DNS_TIMEOUT);
}

static void
test_addresses(struct dns *d)
{
    struct lookup l = run(d, "host.test", DNS_TYPE_A);

    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_ips, 2);
    CHECK(strcmp(l.ans.ips[0], "127.0.0.2") == 0 ||
          strcmp(l.ans.ips[1], "127.0.0.2") == 0);
    CHECK(strcmp(l.ans.ips[0], "127.0.0.3") == 0 ||
          strcmp(l.ans.ips[1], "127.0.0.3") == 0);

    l = run(d, "host.test", DNS_TYPE_AAAA);
    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_ips, 1);
    CHECK_STR(l.ans.ips[0], "::1");

    CHECK_INT(run(d, "txt.test", DNS_TYPE_AAAA).ans.outcome, DNS_NODATA);
}

/* 20 records of each kind; the answer keeps MX_HOSTS_MAX / MX_IPS_MAX. The
 * MX answer is over 512 bytes, so c-ares also has to retry over TCP. */
static void
test_bounds(struct dns *d)
{
    struct lookup l = run(d, "many.test", DNS_TYPE_MX);

    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_mx, MX_HOSTS_MAX);
    CHECK_STR(l.ans.mx[0].host, "mx10.many.test");
    CHECK_INT(l.ans.mx[MX_HOSTS_MAX - 1].pref, 10 + MX_HOSTS_MAX - 1);

    l = run(d, "manyip.test", DNS_TYPE_A);
    CHECK_INT(l.ans.outcome, DNS_OK);
    CHECK_INT(l.ans.n_ips, MX_IPS_MAX);
}

static void
test_invalid(struct dns *d)
{
    struct lookup l;
    char err[256];
    char long_name[DNS_NAME_MAX + 10];

    memset(&l, 0, sizeof l);
    CHECK_INT(dns_query(d, "", DNS_TYPE_MX, on_done, &l), ST_EINVAL);
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_INT(dns_query(d, long_name, DNS_TYPE_MX, on_done, &l), ST_EINVAL);
    CHECK_INT(l.calls, 0);
    CHECK(dns_new(EV_DEFAULT, "not-an-address:xx", 1.0, 1, err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "not-an-address") != NULL);
}

/* Lookups outstanding at dns_free() still get exactly one callback. */
static void
test_cancel(const char *servers)
{
    char err[256];
    struct dns *d = dns_new(EV_DEFAULT, servers, 5.0, 3, err, sizeof err);
    struct lookup a;
    struct lookup b;

    CHECK(d != NULL);
    if (d == NULL)
        return;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK_INT(dns_query(d, "slow.test", DNS_TYPE_MX, on_done, &a), ST_OK);
    CHECK_INT(dns_query(d, "slow.test", DNS_TYPE_A, on_done, &b), ST_OK);
    ev_run(EV_DEFAULT, EVRUN_NOWAIT);
    CHECK_INT(dns_pending(d), 2);
    dns_free(d);
    CHECK_INT(a.calls, 1);
    CHECK_INT(a.ans.outcome, DNS_CANCELLED);
    CHECK_INT(b.calls, 1);
    CHECK_INT(b.ans.outcome, DNS_CANCELLED);
}

int
main(int argc, char **argv)
{
    const char *servers = getenv("LAB_DNS");
    char err[256];
    struct dns *d;

    (void)argc;
    if (servers == NULL) {
        execl("/bin/bash", "bash", "-c", lab_script, argv[0], (char *)NULL);
        perror("test_dns: cannot run bash for the test lab");
        return 1;
    }
    d = dns_new(EV_DEFAULT, servers, 0.2, 2, err, sizeof err);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "test_dns: %s\n", err);
        return check_exit("test_dns");
    }
    test_mx(d);
    test_mx_equal_shuffled(d);
    test_outcomes(d);
    test_addresses(d);
    test_bounds(d);
    test_invalid(d);
    dns_free(d);
    test_cancel(servers);
    return check_exit("test_dns");
}
