/* SPDX-License-Identifier: MIT */
/*
 * Drives the worker's SMTP state machine through a fake transport: each test
 * feeds server replies as bytes, then checks the exact commands the session
 * sent, the addresses it connected to and the outcome of every address.
 */

#include <errno.h>
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
    .mail_timeout = 20,
    .rcpt_timeout = 25,
    .quit_timeout = 5,
};

/* An item for example.test with n_mx hosts of two addresses each. */
static void
item_init(struct probe_item *item, size_t n_mx, const char *const *addrs,
          size_t n_jobs)
{
    fake_item_init(item, n_mx, 2, TRI_UNKNOWN, addrs, n_jobs);
}

/* A session on a transport without STARTTLS. */
static struct smtp_session *
session_new(struct probe_item *item, struct fake *f)
{
    return fake_session_new(item, f, &test_cfg, false);
}

static void
test_plain_accept(void)
{
    const char *addrs[] = {"alice@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;
    const struct smtp_outcome *o;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    CHECK_INT(f.n_connects, 1);
    CHECK_STR(f.connects[0], "127.0.1.1");
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<alice@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    CHECK_INT(f.done_calls, 0);
    feed(s, "221 2.0.0 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    CHECK_INT(smtp_session_state(s), SMTP_ST_DONE);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    o = smtp_session_outcome(s, 0);
    CHECK_STR(o->smtp.enhanced, "2.1.5");
    CHECK_STR(smtp_stage_str(o->smtp.stage), "rcpt");
    CHECK_STR(o->mx, "mx1.example.test");
    CHECK_STR(o->ip, "127.0.1.1");
    CHECK(!smtp_session_tested_catch_all(s));
    CHECK(f.closes >= 1);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_mailbox_not_found(void)
{
    const char *addrs[] = {"nobody@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;
    const struct smtp_outcome *o;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<nobody@example.test>\r\n");
    feed(s, "550 5.1.1 <nobody@example.test>: Recipient address rejected: "
            "User unknown in local recipient table\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 2.0.0 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    o = smtp_session_outcome(s, 0);
    CHECK_STR(o->smtp.enhanced, "5.1.1");
    CHECK_STR(o->smtp.text, "<nobody@example.test>: Recipient address "
                            "rejected: User unknown in local recipient table");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_multiline_and_pipelining(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "220-mx1.example.test ESMTP\r\n220-no UCE\r\n");
    EXPECT_SENT(&f, "");
    feed(s, "220 ready\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "250-mx1.example.test\r\n250-SIZE 10240000\r\n"
            "250-PIPELINING\r\n250 8BITMIME\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    /* RFC 2920: both RCPTs go out before any reply is read. */
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n");
    /* Both replies arrive in one read. */
    feed(s, "250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_no_pipelining_one_at_a_time(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 SIZE 1000\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<b@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 1, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_ehlo_rejected_then_helo(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "220 old.example.test SMTP\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "502 5.5.2 Error: command not recognized\r\n");
    EXPECT_SENT(&f, "HELO probe.test\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_HELO);
    feed(s, "250 old.example.test\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_null_sender_refused(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "550 5.7.1 null sender not accepted here\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<verify@probe.test>\r\n");
    feed(s, "250 2.1.0 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_sender_refused_twice(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "550 5.7.1 no\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<verify@probe.test>\r\n");
    feed(s, "553 5.7.1 Sender address rejected: not logged in\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    check_outcome(s, 0, VS_UNKNOWN, VR_SENDER_REJECTED, 553);
    CHECK_STR(smtp_stage_str(smtp_session_outcome(s, 0)->smtp.stage), "mail");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_catch_all_domain(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    item.catchall_local = xstrdup("moravelto4821");
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 PIPELINING\r\n");
    feed(s, "250 Ok\r\n");
    /* The random address goes first. */
    EXPECT_SENT(&f, "RCPT TO:<moravelto4821@example.test>\r\n"
                    "RCPT TO:<a@example.test>\r\n"
                    "RCPT TO:<b@example.test>\r\n");
    feed(s, "250 Ok\r\n250 Ok\r\n550 5.1.1 no such user\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK(smtp_session_tested_catch_all(s));
    CHECK_INT(smtp_session_catch_all(s), TRI_YES);
    /* Accepted on a catch-all domain: risky, with the real reply kept. */
    check_outcome(s, 0, VS_RISKY, VR_CATCH_ALL, 250);
    /* A rejection stays a rejection. */
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_not_catch_all_domain(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    item.catchall_local = xstrdup("moravelto4821");
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<moravelto4821@example.test>\r\n");
    feed(s, "550 5.1.1 no such user\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(smtp_session_catch_all(s), TRI_NO);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_catch_all_known_from_item(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    item.catch_all = TRI_YES;
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "250 Ok\r\n");
    feed(s, "221 Bye\r\n");
    CHECK(!smtp_session_tested_catch_all(s));
    check_outcome(s, 0, VS_RISKY, VR_CATCH_ALL, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_reply_split_across_reads(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "22");
    feed(s, "0 mx1.exa");
    EXPECT_SENT(&f, "");
    feed(s, "mple.test ESMTP\r");
    EXPECT_SENT(&f, "");
    feed(s, "\n250-mx1");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    CHECK_INT(smtp_session_state(s), SMTP_ST_EHLO);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_garbage_is_protocol_error(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "HTTP/1.1 400 Bad Request\r\n");
    CHECK_INT(f.done_calls, 1);
    CHECK_INT(smtp_session_state(s), SMTP_ST_DONE);
    /* A broken stream gets no QUIT; the connection is just closed. */
    EXPECT_SENT(&f, "");
    CHECK(f.closes >= 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_PROTOCOL_ERROR, 0);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_close_before_greeting(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    /* The next address of the same host is tried. */
    CHECK_INT(f.n_connects, 2);
    CHECK_STR(f.connects[1], "127.0.1.2");
    CHECK_INT(f.done_calls, 0);
    smtp_session_on_connected(s);
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_MX_UNREACHABLE, 0);
    CHECK_STR(smtp_stage_str(smtp_session_outcome(s, 0)->smtp.stage),
              "greeting");
    CHECK_INT(smtp_session_connects(s), 2);
    CHECK_STR(f.all, "");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_connect_failure_next_mx(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 2, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connect_failed(s, ST_EIO, ECONNREFUSED);
    smtp_session_on_timeout(s); /* the second address does not answer */
    CHECK_INT(f.n_connects, 3);
    CHECK_STR(f.connects[2], "127.0.2.1");
    smtp_session_on_connected(s);
    feed(s, "220 mx2.example.test ESMTP\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\n");
    feed(s, "250 mx2.example.test\r\n");
    feed(s, "250 Ok\r\n");
    feed(s, "250 Ok\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    CHECK_STR(smtp_session_outcome(s, 0)->mx, "mx2.example.test");
    CHECK_STR(smtp_session_outcome(s, 0)->ip, "127.0.2.1");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_all_addresses_unreachable(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;
    const struct smtp_outcome *o;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connect_failed(s, ST_EIO, ECONNREFUSED);
    smtp_session_on_connect_failed(s, ST_EIO, ECONNREFUSED);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_MX_UNREACHABLE, 0);
    o = smtp_session_outcome(s, 0);
    CHECK_STR(smtp_stage_str(o->smtp.stage), "connect");
    CHECK(strstr(o->smtp.text, "refused") != NULL);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_greeting_421_next_address(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "421 4.3.2 too busy\r\n");
    EXPECT_SENT(&f, "");
    CHECK_INT(f.n_connects, 2);
    smtp_session_on_connected(s);
    feed(s, "421 4.3.2 still busy\r\n");
    CHECK_INT(f.done_calls, 1);
    CHECK_INT(smtp_session_outcome(s, 0)->smtp.code, 421);
    CHECK_STR(smtp_stage_str(smtp_session_outcome(s, 0)->smtp.stage),
              "greeting");
    CHECK_STR(smtp_session_outcome(s, 0)->smtp.text, "still busy");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_421_during_rcpt_resumes(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\n");
    feed(s, "550 5.1.1 unknown\r\n");
    EXPECT_SENT(&f, "RCPT TO:<b@example.test>\r\n");
    feed(s, "421 4.4.2 timeout, closing\r\n");
    CHECK_INT(f.n_connects, 2);
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250 mx\r\n250 Ok\r\n");
    /* Only the undecided address is asked again. */
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<b@example.test>\r\n");
    feed(s, "250 Ok\r\n221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 1, VS_DELIVERABLE, VR_ACCEPTED, 250);
    CHECK_STR(smtp_session_outcome(s, 1)->ip, "127.0.1.2");
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_rcpt_timeout(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    CHECK(f.timer == test_cfg.mail_timeout);
    feed(s, "250 Ok\r\n");
    CHECK(f.timer == test_cfg.rcpt_timeout);
    smtp_session_on_timeout(s);
    /* A stalled server: the next address is tried before giving up. */
    CHECK_INT(f.done_calls, 0);
    CHECK_INT(f.n_connects, 2);
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250 mx\r\n250 Ok\r\n");
    smtp_session_on_timeout(s);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNKNOWN, VR_TIMEOUT, 0);
    CHECK_STR(smtp_stage_str(smtp_session_outcome(s, 0)->smtp.stage), "rcpt");
    /* Worth another session later. */
    CHECK(smtp_session_outcome(s, 0)->cls.retry);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

/*
 * An anti-harvesting server drops the connection after two answers: the
 * answers stay, the rest are asked again on the same address with half
 * as many RCPTs per connection, and a connection that reached that cap
 * ends with QUIT before the next one opens.
 */
static void
test_harvest_drop_smaller_sessions(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test", "c@example.test",
                           "d@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 4);
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 PIPELINING\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                    "RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\n");
    feed(s, "550 5.1.1 no\r\n550 5.1.1 no\r\n");
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    /* Same address again, not the next one. */
    CHECK_INT(f.n_connects, 2);
    CHECK_STR(f.connects[1], "127.0.1.1");
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\n");
    feed(s, "550 5.1.1 no\r\n");
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    CHECK_INT(f.n_connects, 3);
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<d@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 2, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 3, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

/*
 * The server resets the connection while our pipelined batch still
 * arrives, so writing the third RCPT fails; the answers to the first two
 * are still read before the close, and the session treats it as a drop.
 */
static void
test_harvest_reset_mid_batch(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test", "c@example.test",
                           "d@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 4);
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 PIPELINING\r\n");
    f.sends_before_reset = 3; /* RCPT a and b go out, c fails */
    feed(s, "250 Ok\r\n");
    CHECK_INT(f.n_connects, 1);
    CHECK_INT(f.done_calls, 0);
    feed(s, "550 5.1.1 no\r\n550 5.1.1 no\r\n");
    smtp_session_on_closed(s, ST_EIO, ECONNRESET);
    /* A drop after answers: the same address again, not a requeue. */
    CHECK_INT(f.n_connects, 2);
    CHECK_STR(f.connects[1], "127.0.1.1");
    CHECK_INT(f.done_calls, 0);
    f.fail_send = false;
    f.sent_len = 0;
    smtp_session_on_connected(s);
    /* Three RCPTs were written on the reset connection, so the cap is 1. */
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<c@example.test>\r\n");
    feed(s, "550 5.1.1 no\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.n_connects, 3);
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<d@example.test>\r\n");
    feed(s, "250 2.1.5 Ok\r\n221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 2, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    check_outcome(s, 3, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

/* Past a drop, a connection that reached its RCPT cap QUITs and the rest
 * go on a new connection. */
static void
test_rcpt_cap_reconnects(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test",
                           "c@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 3);
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 PIPELINING\r\n");
    feed(s, "250 Ok\r\n");
    feed(s, "550 5.1.1 no\r\n");
    smtp_session_on_closed(s, ST_ECLOSED, 0); /* sent 3: cap becomes 1 */
    smtp_session_on_connected(s);
    f.sent_len = 0;
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<b@example.test>\r\n");
    feed(s, "550 5.1.1 no\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    CHECK_INT(f.done_calls, 0);
    CHECK_INT(f.n_connects, 3);
    CHECK_STR(smtp_state_str(smtp_session_state(s)), "connecting");
    smtp_session_on_connected(s);
    feed(s, "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n");
    EXPECT_SENT(&f, "EHLO probe.test\r\nMAIL FROM:<>\r\n"
                    "RCPT TO:<c@example.test>\r\n");
    feed(s, "250 Ok\r\n221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 2, VS_DELIVERABLE, VR_ACCEPTED, 250);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_control_char_never_sent(void)
{
    const char *addrs[] = {"a\r\nDATA@example.test", "b@example.test",
                           "c@other.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 3);
    s = session_new(&item, &f);
    open_session(s, &f, "250 mx1.example.test\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<b@example.test>\r\n");
    feed(s, "250 Ok\r\n221 Bye\r\n");
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_SYNTAX, 0);
    CHECK(!smtp_session_outcome(s, 0)->has_smtp);
    check_outcome(s, 2, VS_UNDELIVERABLE, VR_SYNTAX, 0);
    check_outcome(s, 1, VS_DELIVERABLE, VR_ACCEPTED, 250);
    CHECK(strstr(f.all, "DATA") == NULL);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_too_many_recipients(void)
{
    const char *addrs[] = {"a@example.test", "b@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 2);
    s = session_new(&item, &f);
    open_session(s, &f, "250-mx1.example.test\r\n250 PIPELINING\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n");
    feed(s, "250 Ok\r\n452 4.5.3 Error: too many recipients\r\n");
    EXPECT_SENT(&f, "RSET\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "MAIL FROM:<>\r\n");
    feed(s, "250 Ok\r\n");
    EXPECT_SENT(&f, "RCPT TO:<b@example.test>\r\n");
    feed(s, "550 5.1.1 unknown\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    feed(s, "221 Bye\r\n");
    check_outcome(s, 0, VS_DELIVERABLE, VR_ACCEPTED, 250);
    check_outcome(s, 1, VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_greeting_5xx(void)
{
    const char *addrs[] = {"a@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    smtp_session_on_connected(s);
    feed(s, "554 5.7.1 no service for you\r\n");
    EXPECT_SENT(&f, "QUIT\r\n");
    CHECK_INT(f.n_connects, 1);
    smtp_session_on_closed(s, ST_ECLOSED, 0);
    CHECK_INT(f.done_calls, 1);
    CHECK_INT(smtp_session_outcome(s, 0)->smtp.code, 554);
    CHECK(smtp_session_outcome(s, 0)->cls.status != VS_DELIVERABLE);
    CHECK(smtp_session_outcome(s, 0)->cls.status != VS_UNDELIVERABLE);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_nothing_to_send_ends_later(void)
{
    const char *addrs[] = {"bad\n@example.test"};
    struct probe_item item;
    struct fake f;
    struct smtp_session *s;

    item_init(&item, 1, addrs, 1);
    s = session_new(&item, &f);
    smtp_session_start(s);
    /* The callback never fires from inside start. */
    CHECK_INT(f.done_calls, 0);
    CHECK_INT(f.n_connects, 0);
    CHECK(f.timer > 0);
    smtp_session_on_timeout(s);
    CHECK_INT(f.done_calls, 1);
    check_outcome(s, 0, VS_UNDELIVERABLE, VR_SYNTAX, 0);
    smtp_session_free(s);
    codec_probe_fini(&item);
}

static void
test_state_names(void)
{
    CHECK_STR(smtp_state_str(SMTP_ST_RCPT), "rcpt");
    CHECK_STR(smtp_state_str(SMTP_ST_DONE), "done");
    CHECK_STR(smtp_state_str(SMTP_ST_NSTATES), "invalid");
}

int
main(void)
{
    log_setup("test", NULL, LOG_LVL_CRIT);
    test_plain_accept();
    test_mailbox_not_found();
    test_multiline_and_pipelining();
    test_no_pipelining_one_at_a_time();
    test_ehlo_rejected_then_helo();
    test_null_sender_refused();
    test_sender_refused_twice();
    test_catch_all_domain();
    test_not_catch_all_domain();
    test_catch_all_known_from_item();
    test_reply_split_across_reads();
    test_garbage_is_protocol_error();
    test_close_before_greeting();
    test_connect_failure_next_mx();
    test_all_addresses_unreachable();
    test_greeting_421_next_address();
    test_421_during_rcpt_resumes();
    test_rcpt_timeout();
    test_harvest_drop_smaller_sessions();
    test_harvest_reset_mid_batch();
    test_rcpt_cap_reconnects();
    test_control_char_never_sent();
    test_too_many_recipients();
    test_greeting_5xx();
    test_nothing_to_send_ends_later();
    test_state_names();
    return check_exit("test_smtp_session");
}
