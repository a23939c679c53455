/* SPDX-License-Identifier: MIT */
/*
 * Fuzz driver for smtp_reply_feed(). It parses the input twice, once in a
 * single feed and once in chunks whose sizes come from the first byte, and
 * aborts when the two disagree or a reply breaks a documented bound.
 */
#include <string.h>

#include "fuzz.h"
#include "smtp_reply.h"
#include "utf8.h"

/* Replies kept per run for the comparison; later ones are only checked. */
#define FUZZ_REPLIES_MAX 64

struct fuzz_run {
    struct smtp_reply replies[FUZZ_REPLIES_MAX];
    size_t nreplies;
    enum status last;
};

static void
check_reply(const struct smtp_reply *r)
{
    const unsigned char *t = (const unsigned char *)r->text;
    size_t len = strlen(r->text);
    uint32_t cp;

    fuzz_require(r->code >= 200 && r->code <= 559, "code in range");
    fuzz_require(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX,
                 "line count in range");
    fuzz_require(len < SMTP_REPLY_TEXT_MAX, "text bounded");
    fuzz_require(r->enhanced[0] == '\0' ||
                     r->enhanced[0] == (char)('0' + r->code / 100),
                 "enhanced class matches code");
    for (size_t i = 0; i < len;) {
        size_t n = utf8_decode(t + i, len - i, &cp);

        fuzz_require(n > 0, "text is UTF-8");
        fuzz_require(!utf8_is_control(cp), "text has no control character");
        i += n;
    }
}

/* Feeds data in chunks of at most chunk bytes and records the replies. */
static void
run(const char *data, size_t size, size_t chunk, struct fuzz_run *out)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t off = 0;

    smtp_reply_parser_init(&p);
    out->nreplies = 0;
    out->last = ST_AGAIN;
    while (off < size) {
        size_t len = size - off < chunk ? size - off : chunk;
        size_t used = 0;

        out->last = smtp_reply_feed(&p, data + off, len, &used, &r);
        fuzz_require(used <= len, "consumed within the input");
        if (out->last == ST_EPROTO)
            return;
        fuzz_require(used > 0 || len == 0, "progress on every feed");
        off += used;
        if (out->last != ST_OK)
            continue;
        check_reply(&r);
        if (out->nreplies < FUZZ_REPLIES_MAX)
            out->replies[out->nreplies] = r;
        out->nreplies++;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_run whole;
    static struct fuzz_run chunked;
    size_t chunk;
    size_t compared;

    if (size < 1)
        return 0;
    chunk = (size_t)(data[0] % 16) + 1;
    run((const char *)data + 1, size - 1, size, &whole);
    run((const char *)data + 1, size - 1, chunk, &chunked);

    fuzz_require(whole.last == chunked.last, "same final status");
    fuzz_require(whole.nreplies == chunked.nreplies, "same reply count");
    compared =
        whole.nreplies < FUZZ_REPLIES_MAX ? whole.nreplies : FUZZ_REPLIES_MAX;
    for (size_t i = 0; i < compared; i++) {
        const struct smtp_reply *a = &whole.replies[i];
        const struct smtp_reply *b = &chunked.replies[i];

        fuzz_require(a->code == b->code && a->nlines == b->nlines &&
                         strcmp(a->enhanced, b->enhanced) == 0 &&
                         strcmp(a->text, b->text) == 0,
                     "same replies");
    }
    return 0;
}
