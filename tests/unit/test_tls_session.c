/* SPDX-License-Identifier: MIT */
/*
 * STARTTLS in the worker's SMTP state machine (RFC 3207), through a fake
 * transport whose starttls() only records the call: when the session sends
 * STARTTLS, what it forgets after the handshake, which bytes it drops, and
 * that no TLS failure ever makes an address undeliverable.
 */

#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "smtp_session.h"

#include "check.h"
#include "fake_transport.h"

static const struct smtp_session_config test_cfg = {
    .helo_name = "probe.test",
    .sender = "verify@probe.test",
    .connect_timeout = 5,
    .greeting_timeout = 30,
    .ehlo_timeout = 20,
    .mail_timeout = 21,
    .rcpt_timeout = 25,
    .quit_timeout = 4,
};

/* An item for example.test: n_mx hosts with one address each. */
static void
item_init(struct probe_item *item, size_t n_mx, const char *const *addrs,
          size_t n_jobs)
{
    fake_item_init(item, n_mx, 1, TRI_NO, addrs, n_jobs);
}

/* A session whose transport offers STARTTLS only when with_tls is set. */
static struct smtp_session *
session_new(struct probe_item *item, struct fake *f, bool with_tls)
{
    return fake_session_new(item, f, &test_cfg, with_tls);
}

#define EHLO_TLS "250-mx1.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
#define REFUSED "530 5.7.0 Must issue a STARTTLS command first\r\n"

/* Refuses MAIL until TLS and answers STARTTLS with reply; the session is
 * then in SMTP_ST_TLS when reply is a 220. */
static void
refuse_until_tls(struct smtp_session *s, struct fake *f, const char *reply)
{
    feed(s, REFUSED);
    EXPECT_SENT(f, "STARTTLS\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_STARTTLS);
    feed(s, reply);
}

static void
test_mail_refused_then_tls(void)
{
    const char *addrs[] = {"alice@example.test", "nobody@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready to start TLS\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_TLS);
    CHECK_INT(f.starttls_calls, 1);
    CHECK_STR(f.sni, "mx1.example.test");
    CHECK(f.timer == test_cfg.connect_timeout);
    EXPECT_SENT(&f, "");

    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.3");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    /* The new EHLO reply lacks PIPELINING, so the pipelining learned in
     * plaintext must be gone: one RCPT at a time. */
    feed(s, "250 mx1.example.test\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<alice@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<nobody@example.test>\r\n");
    feed(s, "550 5.1.1 No such user\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 2.0.0 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    CHECK_INT(f.n_connects, 1);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_bytes_after_220_dropped(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    /* A forged reply rides in the same segment as the 220. */
    refuse_until_tls(s, &f,
                     "220 2.0.0 Ready\r\n250 2.1.5 forged\r\n550 5.1.1 x\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_TLS);
    CHECK_INT(f.starttls_calls, 1);
    /* More plaintext before the handshake ends is dropped too. */
    feed(s, "250 2.1.5 forged again\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_TLS);
    EXPECT_SENT(&f, "");

    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.3");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "250 mx1.example.test\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<alice@example.test>\r\n");
    feed(s, "550 5.1.1 No such user\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 2.0.0 Bye\r\n");
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_partial_line_after_220_dropped(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    /* Half a line behind the 220 must not stay in the reply parser and
     * join the first reply read through TLS. */
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n250-half");
    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.2");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "250 mx1.example.test\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_rcpt_refused_rset_first(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n");
    feed(s, REFUSED);
    EXPECT_SENT(&f, "");
    feed(s, REFUSED);
    /* TLS discards the transaction anyway; RSET ends it first. */
    EXPECT_SENT(&f, "RSET\r\n");
    feed(s, "250 2.0.0 Ok\r\n");
    EXPECT_SENT(&f, "STARTTLS\r\n");
    feed(s, "220 2.0.0 Ready\r\n");
    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.3");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, EHLO_TLS);
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    /* Both addresses were left undecided by the 530s. */
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.starttls_calls, 1);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

/* A 530 ends as unknown/protocol_error when STARTTLS cannot be tried. */
static void
check_refusal_stands(const char *ehlo, bool with_tls)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, with_tls);
    open_session(s, &f, ehlo);
    feed(s, REFUSED);
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.starttls_calls, 0);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_PROTOCOL_ERROR, 530);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_refusal_without_starttls(void)
{
    /* Not advertised by the server. */
    check_refusal_stands("250-mx1.example.test\r\n250 PIPELINING\r\n", true);
    /* Advertised, but the transport has no TLS. */
    check_refusal_stands(EHLO_TLS, false);
}

static void
test_refusal_after_tls(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n");
    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.3");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    /* Still offered and still refused: no second STARTTLS, no loop. */
    feed(s, EHLO_TLS);
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, REFUSED);
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.starttls_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_PROTOCOL_ERROR, 530);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_starttls_454_next_mx(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 2, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "454 4.7.0 TLS not available\r\n");
    CHECK_INT(f.starttls_calls, 0);
    CHECK_INT(f.n_connects, 2);
    CHECK_STR(f.last_ip, "127.0.2.1");
    /* The second host fails the same way: the 454 is the answer. */
    f.sent_len = 0;
    smtp_session_on_connected(s);
    feed(s, "220 mx2.example.test ESMTP\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, EHLO_TLS);
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    refuse_until_tls(s, &f, "454 4.7.0 TLS not available\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_TEMPORARY_FAILURE, 454);
    CHECK_STR(smtp_stage_str(smtp_session_outcome(s, 0)->smtp.stage), "ehlo");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_handshake_failure(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;
    const struct smtp_outcome *o;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n");
    smtp_session_on_tls_done(s, ST_EPROTO, "wrong version number");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_PROTOCOL_ERROR, 0);
    o = smtp_session_outcome(s, 0);
    CHECK_STR(o->smtp.text, "TLS handshake failed: wrong version number");
    CHECK_STR(o->mx, "mx1.example.test");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_handshake_failure_next_mx(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 2, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n");
    smtp_session_on_tls_done(s, ST_ECLOSED, "connection closed");
    CHECK_INT(f.done_calls, 0);
    CHECK_INT(f.n_connects, 2);
    f.sent_len = 0;
    smtp_session_on_connected(s);
    feed(s, "220 mx2.example.test ESMTP\r\n");
    /* Nothing of the first connection is kept: a plain EHLO, no TLS. */
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "250 mx2.example.test\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<alice@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    CHECK_STR(smtp_session_outcome(s, 0)->mx, "mx2.example.test");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_handshake_timeout(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n");
    smtp_session_on_timeout(s);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_TIMEOUT, 0);
    /* A late end of the handshake is ignored. */
    smtp_session_on_tls_done(s, ST_OK, "version=TLSv1.3");
    EXPECT_SENT(&f, "");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_starttls_not_started(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f, true);
    f.starttls_result = ST_EIO;
    open_session(s, &f, EHLO_TLS);
    refuse_until_tls(s, &f, "220 2.0.0 Ready\r\n");
    CHECK_INT(f.starttls_calls, 1);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_PROTOCOL_ERROR, 0);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_state_names(void)
{
    CHECK_STR(smtp_state_str(SMTP_ST_STARTTLS), "starttls");
    CHECK_STR(smtp_state_str(SMTP_ST_TLS), "tls");
}

int
main(void)
{
    log_setup("test", NULL, LOG_LVL_CRIT);
    test_mail_refused_then_tls();
    test_bytes_after_220_dropped();
    test_partial_line_after_220_dropped();
    test_rcpt_refused_rset_first();
    test_refusal_without_starttls();
    test_refusal_after_tls();
    test_starttls_454_next_mx();
    test_handshake_failure();
    test_handshake_failure_next_mx();
    test_handshake_timeout();
    test_starttls_not_started();
    test_state_names();
    return check_exit("test_tls_session");
}
