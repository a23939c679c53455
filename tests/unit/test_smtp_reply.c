/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for smtp_reply_feed(): single and multi-line replies, input
 * split at every offset, pipelined replies in one buffer, enhanced codes,
 * the line and line-count limits, garbage, text sanitising and the sticky
 * failure.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "smtp_reply.h"
#include "utf8.h"

#define BYTES(s) s, sizeof(s) - 1

/* A rejection reply in the style of a large provider: every line repeats
 * the enhanced code, and the last one has two spaces after it. */
static const char multi_550[] =
    "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
    "550-5.1.1 Please check the recipient's address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. More at\r\n"
    "550 5.1.1  https://help.example/mail/?p=NoSuchUser x12 - mta\r\n";
static const char multi_550_text[] =
    "The email account that you tried to reach does not exist. "
    "Please check the recipient's address for typos or "
    "unnecessary spaces. More at "
    "https://help.example/mail/?p=NoSuchUser x12 - mta";

/* Feeds one whole buffer that must hold exactly one reply. */
static enum status
parse_one(const char *data, size_t len, struct smtp_reply *out)
{
    struct smtp_reply_parser p;
    size_t used = 0;
    enum status st;

    smtp_reply_parser_init(&p);
    st = smtp_reply_feed(&p, data, len, &used, out);
    if (st == ST_OK)
        CHECK_INT(used, len);
    return st;
}

static void
test_single_line(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(BYTES("250 OK\r\n"), &r), ST_OK);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "OK");
    CHECK_INT(r.nlines, 1);

    CHECK_INT(parse_one(BYTES("220 mx.example.org ESMTP ready\r\n"), &r),
              ST_OK);
    CHECK_INT(r.code, 220);
    CHECK_STR(r.text, "mx.example.org ESMTP ready");

    CHECK_INT(parse_one(BYTES("250\r\n"), &r), ST_OK);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.text, "");
    CHECK_INT(r.nlines, 1);

    CHECK_INT(parse_one(BYTES("354 \r\n"), &r), ST_OK);
    CHECK_INT(r.code, 354);
    CHECK_STR(r.text, "");
}

static void
test_multi_line(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(multi_550, sizeof multi_550 - 1, &r), ST_OK);
    CHECK_INT(r.code, 550);
    CHECK_STR(r.enhanced, "5.1.1");
    CHECK_STR(r.text, multi_550_text);
    CHECK_INT(r.nlines, 4);

    CHECK_INT(parse_one(BYTES("250-mx.example.org Hello\r\n"
                              "250-PIPELINING\r\n"
                              "250-SIZE 10240000\r\n"
                              "250 8BITMIME\r\n"),
                        &r),
              ST_OK);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "mx.example.org Hello PIPELINING SIZE 10240000 8BITMIME");
    CHECK_INT(r.nlines, 4);

    /* Empty continuation lines add no double spaces. */
    CHECK_INT(parse_one(BYTES("250-\r\n250-  \r\n250 ok\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "ok");
    CHECK_INT(r.nlines, 3);

    CHECK_INT(parse_one(BYTES("250-first\r\n250\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "first");
    CHECK_INT(r.nlines, 2);
}

static bool
same_reply(const struct smtp_reply *a, const struct smtp_reply *b)
{
    return a->code == b->code && a->nlines == b->nlines &&
           strcmp(a->enhanced, b->enhanced) == 0 &&
           strcmp(a->text, b->text) == 0;
}

/* Splits the input in two at every offset and also feeds it byte by byte;
 * each way must give the reply that one feed gives. */
static void
test_split_feeds(void)
{
    const size_t len = sizeof multi_550 - 1;
    struct smtp_reply whole;
    struct smtp_reply r;
    struct smtp_reply_parser p;
    size_t used;
    int mismatches = 0;

    CHECK_INT(parse_one(multi_550, len, &whole), ST_OK);

    for (size_t k = 0; k < len; k++) {
        smtp_reply_parser_init(&p);
        memset(&r, 0, sizeof r);
        if (smtp_reply_feed(&p, multi_550, k, &used, &r) != ST_AGAIN ||
            used != k) {
            mismatches++;
            continue;
        }
        if (smtp_reply_feed(&p, multi_550 + k, len - k, &used, &r) != ST_OK ||
            used != len - k || !same_reply(&r, &whole))
            mismatches++;
    }
    CHECK_INT(mismatches, 0);

    smtp_reply_parser_init(&p);
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < len; i++) {
        enum status st = smtp_reply_feed(&p, multi_550 + i, 1, &used, &r);

        CHECK_INT(used, 1);
        CHECK_INT(st, i + 1 == len ? ST_OK : ST_AGAIN);
    }
    CHECK(same_reply(&r, &whole));
}

static void
test_pipelined(void)
{
    static const char data[] = "250 2.1.0 Ok\r\n"
                               "250 2.1.5 Ok\r\n"
                               "550 5.1.1 <x@example.org>: Recipient address "
                               "rejected\r\n"
                               "221 2.0.0 Bye\r\n"
                               "250-partial";
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t off = 0;
    size_t used;

    smtp_reply_parser_init(&p);
    CHECK_INT(smtp_reply_feed(&p, data, sizeof data - 1, &used, &r), ST_OK);
    CHECK_INT(used, 14);
    CHECK_INT(r.code, 250);
    CHECK_STR(r.enhanced, "2.1.0");
    off += used;

    CHECK_INT(smtp_reply_feed(&p, data + off, sizeof data - 1 - off, &used, &r),
              ST_OK);
    CHECK_STR(r.enhanced, "2.1.5");
    off += used;

    CHECK_INT(smtp_reply_feed(&p, data + off, sizeof data - 1 - off, &used, &r),
              ST_OK);
    CHECK_INT(r.code, 550);
    CHECK_STR(r.text, "<x@example.org>: Recipient address rejected");
    off += used;

    CHECK_INT(smtp_reply_feed(&p, data + off, sizeof data - 1 - off, &used, &r),
              ST_OK);
    CHECK_INT(r.code, 221);
    CHECK_INT(r.nlines, 1);
    off += used;

    CHECK_INT(smtp_reply_feed(&p, data + off, sizeof data - 1 - off, &used, &r),
              ST_AGAIN);
    CHECK_INT(used, sizeof data - 1 - off);
    CHECK_INT(smtp_reply_feed(&p, BYTES(" x\r\n250 y\r\n"), &used, &r), ST_OK);
    CHECK_STR(r.text, "partial x y");
    CHECK_INT(r.nlines, 2);
}

static void
test_bare_lf(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(BYTES("250-a\n250 b\n"), &r), ST_OK);
    CHECK_STR(r.text, "a b");
    CHECK_INT(r.nlines, 2);

    CHECK_INT(parse_one(BYTES("250-a\r\n250 b\n"), &r), ST_OK);
    CHECK_STR(r.text, "a b");
}

static void
test_enhanced_codes(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(BYTES("250 2.0.0 Ok: queued\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "2.0.0");
    CHECK_STR(r.text, "Ok: queued");

    CHECK_INT(parse_one(BYTES("550 No such user\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "No such user");

    /* The class must match the first digit of the reply code. */
    CHECK_INT(parse_one(BYTES("250 5.1.1 odd\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "5.1.1 odd");

    CHECK_INT(parse_one(BYTES("451 4.7.1 Greylisted\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "4.7.1");

    CHECK_INT(parse_one(BYTES("550 5.1.1x bad\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");
    CHECK_STR(r.text, "5.1.1x bad");

    CHECK_INT(parse_one(BYTES("550 5.1234.1 bad\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");

    CHECK_INT(parse_one(BYTES("550 5.1.1234 bad\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");

    CHECK_INT(parse_one(BYTES("550 5..1 bad\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "");

    CHECK_INT(parse_one(BYTES("550 5.123.456 long\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "5.123.456");
    CHECK_STR(r.text, "long");

    CHECK_INT(parse_one(BYTES("550 5.7.1\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "5.7.1");
    CHECK_STR(r.text, "");

    /* A different code on a later line stays in the text. */
    CHECK_INT(parse_one(BYTES("550-5.1.1 a\r\n550 5.7.1 b\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "5.1.1");
    CHECK_STR(r.text, "a 5.7.1 b");

    CHECK_INT(parse_one(BYTES("550-first\r\n550 5.1.1 second\r\n"), &r), ST_OK);
    CHECK_STR(r.enhanced, "5.1.1");
    CHECK_STR(r.text, "first second");
}

/* Builds "250 " followed by n - 4 letters, without a line end. */
static size_t
make_line(char *buf, size_t n)
{
    memcpy(buf, "250 ", 4);
    memset(buf + 4, 'x', n - 4);
    return n;
}

static void
test_line_limit(void)
{
    char buf[SMTP_REPLY_LINE_MAX + 16];
    struct smtp_reply r;
    size_t n;

    /* 510 octets and CRLF make the 512 that RFC 5321 allows. */
    n = make_line(buf, 510);
    memcpy(buf + n, "\r\n", 2);
    CHECK_INT(parse_one(buf, n + 2, &r), ST_OK);
    CHECK_INT(strlen(r.text), 506);

    n = make_line(buf, 511);
    memcpy(buf + n, "\r\n", 2);
    CHECK_INT(parse_one(buf, n + 2, &r), ST_EPROTO);

    n = make_line(buf, 511);
    buf[n] = '\n';
    CHECK_INT(parse_one(buf, n + 1, &r), ST_OK);

    n = make_line(buf, 512);
    buf[n] = '\n';
    CHECK_INT(parse_one(buf, n + 1, &r), ST_EPROTO);

    /* The limit triggers before the line end arrives. */
    {
        struct smtp_reply_parser p;
        size_t used;

        smtp_reply_parser_init(&p);
        n = make_line(buf, SMTP_REPLY_LINE_MAX + 8);
        CHECK_INT(smtp_reply_feed(&p, buf, n, &used, &r), ST_EPROTO);
        CHECK_INT(used, SMTP_REPLY_LINE_MAX);
    }
}

static void
feed_lines(struct smtp_reply_parser *p, size_t nlines, enum status *last_st,
           struct smtp_reply *r)
{
    size_t used;

    *last_st = ST_AGAIN;
    for (size_t i = 0; i + 1 < nlines; i++) {
        *last_st = smtp_reply_feed(p, BYTES("250-line\r\n"), &used, r);
        if (*last_st != ST_AGAIN)
            return;
    }
    *last_st = smtp_reply_feed(p, BYTES("250 end\r\n"), &used, r);
}

static void
test_line_count(void)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    enum status st;

    smtp_reply_parser_init(&p);
    feed_lines(&p, SMTP_REPLY_LINES_MAX, &st, &r);
    CHECK_INT(st, ST_OK);
    CHECK_INT(r.nlines, SMTP_REPLY_LINES_MAX);

    smtp_reply_parser_init(&p);
    feed_lines(&p, SMTP_REPLY_LINES_MAX + 1, &st, &r);
    CHECK_INT(st, ST_EPROTO);
}

static void
test_garbage(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(BYTES("HTTP/1.1 400 Bad Request\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("25\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("2500 x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("250x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("600 x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("199 x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("260 x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES(" 250 x\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\n"), &r),
              ST_EPROTO);
}

static void
test_text_sanitising(void)
{
    struct smtp_reply r;

    CHECK_INT(
        parse_one(BYTES("550 bad\xff byte\x01 esc\x1b[31m tab\there\r\n"), &r),
        ST_OK);
    CHECK_STR(r.text, "bad? byte? esc?[31m tab?here");

    CHECK_INT(parse_one(BYTES("550 Empf\xc3\xa4nger unbekannt\r\n"), &r),
              ST_OK);
    CHECK_STR(r.text, "Empf\xc3\xa4nger unbekannt");

    CHECK_INT(parse_one(BYTES("550 a\xc2\x85"
                              "b\r\n"),
                        &r),
              ST_OK);
    CHECK_STR(r.text, "a?b");

    CHECK_INT(parse_one(BYTES("550 a\0b\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "a?b");

    CHECK_INT(parse_one(BYTES("550 a\rb\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "a?b");

    /* Overlong '/' and a surrogate, byte by byte. */
    CHECK_INT(parse_one(BYTES("550 \xc0\xaf \xed\xa0\x80\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "?? ???");

    CHECK_INT(parse_one(BYTES("550 cut \xe2\x82\r\n"), &r), ST_OK);
    CHECK_STR(r.text, "cut ??");
}

/* Returns whether s is entirely well-formed UTF-8. */
static bool
valid_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    uint32_t cp;

    for (size_t i = 0; i < len;) {
        size_t n = utf8_decode(u + i, len - i, &cp);

        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static void
test_text_limit(void)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    char line[SMTP_REPLY_LINE_MAX];
    enum status st = ST_AGAIN;
    size_t used;

    /* 20 lines of 167 two-byte characters: far over the text limit. */
    memcpy(line, "250-", 4);
    for (size_t i = 0; i < 167; i++)
        memcpy(line + 4 + 2 * i, "\xc3\xa9", 2);
    memcpy(line + 4 + 334, "\r\n", 2);

    smtp_reply_parser_init(&p);
    for (int i = 0; i < 20 && st == ST_AGAIN; i++)
        st = smtp_reply_feed(&p, line, 340, &used, &r);
    CHECK_INT(st, ST_AGAIN);
    CHECK_INT(smtp_reply_feed(&p, BYTES("250 tail\r\n"), &used, &r), ST_OK);
    CHECK_INT(r.nlines, 21);
    CHECK(strlen(r.text) <= SMTP_REPLY_TEXT_MAX - 1);
    CHECK(strlen(r.text) >= SMTP_REPLY_TEXT_MAX - 4);
    CHECK(valid_utf8(r.text));
    CHECK(strstr(r.text, "tail") == NULL);
    CHECK(r.text[strlen(r.text) - 1] != ' ');

    /* The next reply starts with an empty text again. */
    CHECK_INT(smtp_reply_feed(&p, BYTES("250 fresh\r\n"), &used, &r), ST_OK);
    CHECK_STR(r.text, "fresh");
}

static void
test_mixed_codes(void)
{
    struct smtp_reply r;

    CHECK_INT(parse_one(BYTES("250-a\r\n251 b\r\n"), &r), ST_EPROTO);
    CHECK_INT(parse_one(BYTES("550-a\r\n450 b\r\n"), &r), ST_EPROTO);
}

static void
test_sticky_failure(void)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used;

    smtp_reply_parser_init(&p);
    CHECK_INT(smtp_reply_feed(&p, BYTES("bogus\r\n250 OK\r\n"), &used, &r),
              ST_EPROTO);
    CHECK_INT(used, 7);
    CHECK_INT(smtp_reply_feed(&p, BYTES("250 OK\r\n"), &used, &r), ST_EPROTO);
    CHECK_INT(used, 0);

    smtp_reply_parser_init(&p);
    CHECK_INT(smtp_reply_feed(&p, BYTES("250 OK\r\n"), &used, &r), ST_OK);
    CHECK_INT(r.code, 250);
}

static void
test_incomplete(void)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used = 99;

    smtp_reply_parser_init(&p);
    CHECK_INT(smtp_reply_feed(&p, "", 0, &used, &r), ST_AGAIN);
    CHECK_INT(used, 0);
    CHECK_INT(smtp_reply_feed(&p, BYTES("250-a\r\n250 b"), &used, &r),
              ST_AGAIN);
    CHECK_INT(used, 12);
    CHECK_INT(smtp_reply_feed(&p, BYTES("\r"), &used, &r), ST_AGAIN);
    CHECK_INT(smtp_reply_feed(&p, BYTES("\n"), &used, &r), ST_OK);
    CHECK_STR(r.text, "a b");
}

int
main(void)
{
    test_single_line();
    test_multi_line();
    test_split_feeds();
    test_pipelined();
    test_bare_lf();
    test_enhanced_codes();
    test_line_limit();
    test_line_count();
    test_garbage();
    test_text_sanitising();
    test_text_limit();
    test_mixed_codes();
    test_sticky_failure();
    test_incomplete();
    return check_exit("test_smtp_reply");
}
