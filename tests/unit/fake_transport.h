/* SPDX-License-Identifier: MIT */
/*
 * A fake transport for the SMTP session unit tests, and the helpers that
 * drive a session through it. The fake records the bytes the session sends,
 * the addresses it connects to, closes, timers and STARTTLS calls, and can
 * make sends fail. Every function is static, so each test executable gets
 * its own copy.
 */
#ifndef MXPROBE_TEST_FAKE_TRANSPORT_H
#define MXPROBE_TEST_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtp_session.h"
#include "xalloc.h"

#include "check.h"

#define TRANSCRIPT_MAX 8192
#define FAKE_CONNECTS_MAX 8

struct fake {
    char sent[TRANSCRIPT_MAX]; /* bytes sent since the last EXPECT_SENT */
    size_t sent_len;
    char all[TRANSCRIPT_MAX]; /* every byte ever sent */
    size_t all_len;
    char connects[FAKE_CONNECTS_MAX][64]; /* the first connect() addresses */
    int n_connects;
    char last_ip[64];
    int closes;
    double timer;
    int done_calls;
    bool fail_send;
    int sends_before_reset; /* when > 0: sends that pass, then all fail */
    int starttls_calls;
    char sni[256];
    enum status starttls_result;
};

static inline void
fake_connect(void *ctx, const char *ip)
{
    struct fake *f = ctx;

    if (f->n_connects < FAKE_CONNECTS_MAX)
        snprintf(f->connects[f->n_connects], sizeof f->connects[0], "%s", ip);
    f->n_connects++;
    snprintf(f->last_ip, sizeof f->last_ip, "%s", ip);
}

/* Appends data to buf when it fits with its terminating NUL, and drops it
 * otherwise. */
static inline void
fake_record(char *buf, size_t *len, const char *data, size_t data_len)
{
    if (*len + data_len < TRANSCRIPT_MAX) {
        memcpy(buf + *len, data, data_len);
        *len += data_len;
        buf[*len] = '\0';
    }
}

static inline enum status
fake_send(void *ctx, const char *data, size_t len)
{
    struct fake *f = ctx;

    if (f->fail_send)
        return ST_EIO;
    if (f->sends_before_reset > 0 && --f->sends_before_reset == 0)
        f->fail_send = true;
    fake_record(f->sent, &f->sent_len, data, len);
    fake_record(f->all, &f->all_len, data, len);
    return ST_OK;
}

static inline void
fake_close(void *ctx)
{
    struct fake *f = ctx;

    f->closes++;
}

static inline void
fake_set_timer(void *ctx, double seconds)
{
    struct fake *f = ctx;

    f->timer = seconds;
}

/* Records the call only: the test ends the handshake itself with
 * smtp_session_on_tls_done(). */
static inline enum status
fake_starttls(void *ctx, const char *sni)
{
    struct fake *f = ctx;

    f->starttls_calls++;
    snprintf(f->sni, sizeof f->sni, "%s", sni);
    return f->starttls_result;
}

static inline void
fake_on_done(struct smtp_session *s, void *arg)
{
    struct fake *f = arg;

    (void)s;
    f->done_calls++;
}

/* Fills item for example.test with n_mx hosts mx1, mx2, ... of n_ips
 * addresses each (host i, address j is 127.0.i.j) and one job per entry of
 * addrs. The caller frees it with codec_probe_fini(). */
static inline void
fake_item_init(struct probe_item *item, size_t n_mx, size_t n_ips,
               enum tristate catch_all, const char *const *addrs, size_t n_jobs)
{
    char buf[64];

    memset(item, 0, sizeof *item);
    item->domain = xstrdup("example.test");
    item->catch_all = catch_all;
    item->n_mx = n_mx;
    item->mx = xcalloc(n_mx, sizeof *item->mx);
    for (size_t i = 0; i < n_mx; i++) {
        snprintf(buf, sizeof buf, "mx%zu.example.test", i + 1);
        item->mx[i].name = xstrdup(buf);
        item->mx[i].pref = (int)(10 * (i + 1));
        item->mx[i].n_ips = n_ips;
        item->mx[i].ips = xcalloc(n_ips, sizeof(char *));
        for (size_t j = 0; j < n_ips; j++) {
            snprintf(buf, sizeof buf, "127.0.%zu.%zu", i + 1, j + 1);
            item->mx[i].ips[j] = xstrdup(buf);
        }
    }
    item->n_jobs = n_jobs;
    item->jobs = xcalloc(n_jobs, sizeof *item->jobs);
    for (size_t i = 0; i < n_jobs; i++) {
        item->jobs[i].address = xstrdup(addrs[i]);
        item->jobs[i].email = xstrdup(addrs[i]);
        item->jobs[i].id = xstrdup(addrs[i]);
    }
}

/* Clears f and starts a session on it. Without with_tls the transport has
 * no starttls(), as when the worker runs without TLS. */
static inline struct smtp_session *
fake_session_new(struct probe_item *item, struct fake *f,
                 const struct smtp_session_config *cfg, bool with_tls)
{
    struct smtp_transport t = {
        .connect = fake_connect,
        .send = fake_send,
        .close = fake_close,
        .set_timer = fake_set_timer,
        .starttls = with_tls ? fake_starttls : NULL,
        .ctx = f,
    };

    memset(f, 0, sizeof *f);
    f->starttls_result = ST_OK;
    return smtp_session_new(item, cfg, &t, "test-item", fake_on_done, f);
}

static inline void
feed(struct smtp_session *s, const char *text)
{
    smtp_session_on_data(s, text, strlen(text));
}

#define EXPECT_SENT(f, want)                                                   \
    do {                                                                       \
        CHECK_STR((f)->sent, (want));                                          \
        (f)->sent_len = 0;                                                     \
        (f)->sent[0] = '\0';                                                   \
    } while (0)

/* Connects, feeds the greeting and the EHLO reply ehlo, and leaves the
 * session waiting for the MAIL reply. */
static inline void
open_session(struct smtp_session *s, struct fake *f, const char *ehlo)
{
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "220 mx1.example.test ESMTP\r\n");
    EXPECT_SENT(f, "EHLO probe.test\r\n");
    feed(s, ehlo);
    EXPECT_SENT(f, "MAIL FROM:<>\r\n");
}

static inline void
check_outcome(const struct smtp_session *s, size_t job,
              enum verdict_status status, enum verdict_reason reason, int code)
{
    const struct smtp_outcome *o = smtp_session_outcome(s, job);

    CHECK(o->decided);
    CHECK_STR(verdict_status_str(o->cls.status), verdict_status_str(status));
    CHECK_STR(verdict_reason_str(o->cls.reason), verdict_reason_str(reason));
    CHECK_INT(o->smtp.code, code);
}

#endif
