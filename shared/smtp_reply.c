/* SPDX-License-Identifier: MIT */
/*
 * The incremental SMTP reply parser: bytes in, whole replies out, with the
 * basic code, the RFC 3463 enhanced code and sanitised text. It keeps one
 * line and one reply in fixed buffers and never reads a socket, so the
 * session code decides what a reply means and what to send next.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <string.h>

#include "utf8.h"

/* The length of "250" and of "250 ", the code and its separator. */
#define SMTP_REPLY_CODE_LEN 3
#define SMTP_REPLY_PREFIX_LEN 4

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
    memset(p, 0, sizeof *p);
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Parses the reply code at the start of a line. RFC 5321 section 4.2:
 * Reply-code = %x32-35 %x30-35 %x30-39. Returns the code, or -1.
 */
static int
parse_code(const char *s, size_t len)
{
    if (len < SMTP_REPLY_CODE_LEN)
        return -1;
    if (s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || !is_digit(s[2]))
        return -1;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Returns the number of digits at s, reading at most max + 1 of len. */
static size_t
count_digits(const char *s, size_t len, size_t max)
{
    size_t n = 0;

    while (n < len && n <= max && is_digit(s[n]))
        n++;
    return n;
}

/*
 * Returns the length of the RFC 3463 enhanced code at the start of s, or 0
 * when there is none. The code is class "." subject "." detail, with
 * subject and detail of 1 to 3 digits. The class must equal klass, the
 * first digit of the basic code, because a code of another class
 * contradicts the reply. A space or the end of the text must follow, so
 * that "5.1.1x" is not taken.
 */
static size_t
enhanced_len(const char *s, size_t len, char klass)
{
    size_t pos;
    size_t n;

    if (len < 5 || s[0] != klass || s[1] != '.')
        return 0;

    pos = 2;
    n = count_digits(s + pos, len - pos, 3);
    if (n == 0 || n > 3 || pos + n >= len || s[pos + n] != '.')
        return 0;

    pos += n + 1;
    n = count_digits(s + pos, len - pos, 3);
    if (n == 0 || n > 3)
        return 0;

    pos += n;
    if (pos < len && s[pos] != ' ')
        return 0;
    return pos;
}

/*
 * Appends one character of text, or '?' for a control character or a byte
 * that is not valid UTF-8. Returns how many input bytes it used, or 0 when
 * the text is full, in which case nothing was written.
 */
static size_t
append_char(struct smtp_reply *r, size_t *used, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    size_t step = utf8_decode(u, len, &cp);
    size_t width = step;
    bool replace = step == 0 || utf8_is_control(cp);

    if (step == 0)
        step = 1;
    if (replace)
        width = 1;
    if (*used + width > SMTP_REPLY_TEXT_MAX - 1)
        return 0;

    if (replace)
        r->text[*used] = '?';
    else
        memcpy(r->text + *used, s, width);
    *used += width;
    return step;
}

/*
 * Appends the text of one line to the reply, separated from earlier text
 * by one space, and cuts it at a character boundary when the buffer is
 * full. Once cut, later lines add nothing, so the text never resumes after
 * a gap.
 */
static void
append_text(struct smtp_reply_parser *p, const char *s, size_t len)
{
    struct smtp_reply *r = &p->partial;
    size_t used = strlen(r->text);
    size_t before = used;
    size_t i = 0;

    if (len == 0 || p->text_cut)
        return;

    if (used > 0)
        r->text[used++] = ' ';
    while (i < len) {
        size_t step = append_char(r, &used, s + i, len - i);

        if (step == 0) {
            p->text_cut = true;
            break;
        }
        i += step;
    }

    /* Drop a separator that no text followed. */
    if (i == 0)
        used = before;
    r->text[used] = '\0';
}

/*
 * Takes the enhanced code off the front of a line's text. The first code
 * seen becomes the reply's, and a repeat of it is dropped from the text.
 * A different code stays in the text as the server wrote it.
 */
static void
take_enhanced(struct smtp_reply *r, const char **s, size_t *len)
{
    size_t n = enhanced_len(*s, *len, (char)('0' + r->code / 100));

    if (n == 0)
        return;
    if (r->enhanced[0] == '\0') {
        /* n <= 9 by the digit limits, so it fits SMTP_ENHANCED_MAX. */
        memcpy(r->enhanced, *s, n);
        r->enhanced[n] = '\0';
    } else if (strlen(r->enhanced) != n || memcmp(r->enhanced, *s, n) != 0) {
        return;
    }
    *s += n;
    *len -= n;
}

/*
 * Parses the complete line in p->line (its LF already removed) into the
 * reply being assembled. Stores whether it was the last line in *last.
 */
static enum status
take_line(struct smtp_reply_parser *p, bool *last)
{
    struct smtp_reply *r = &p->partial;
    size_t len = p->line_len;
    const char *text;
    size_t text_len;
    int code;

    if (len > 0 && p->line[len - 1] == '\r')
        len--;
    code = parse_code(p->line, len);
    if (code < 0)
        return ST_EPROTO;

    /* RFC 5321 section 4.2.1: "250-" continues the reply and "250 " or a
     * bare "250" ends it. */
    if (len == SMTP_REPLY_CODE_LEN || p->line[SMTP_REPLY_CODE_LEN] == ' ')
        *last = true;
    else if (p->line[SMTP_REPLY_CODE_LEN] == '-')
        *last = false;
    else
        return ST_EPROTO;

    if (r->nlines > 0 && code != r->code)
        return ST_EPROTO;
    if (r->nlines == SMTP_REPLY_LINES_MAX)
        return ST_EPROTO;
    r->code = code;
    r->nlines++;

    text =
        p->line + (len < SMTP_REPLY_PREFIX_LEN ? len : SMTP_REPLY_PREFIX_LEN);
    text_len = len - (size_t)(text - p->line);
    while (text_len > 0 && is_blank(text[0])) {
        text++;
        text_len--;
    }
    take_enhanced(r, &text, &text_len);
    while (text_len > 0 && is_blank(text[0])) {
        text++;
        text_len--;
    }
    while (text_len > 0 && is_blank(text[text_len - 1]))
        text_len--;
    append_text(p, text, text_len);
    return ST_OK;
}

static void
reset_reply(struct smtp_reply_parser *p)
{
    memset(&p->partial, 0, sizeof p->partial);
    p->text_cut = false;
    p->line_len = 0;
}

enum status
smtp_reply_feed(struct smtp_reply_parser *p, const char *data, size_t len,
                size_t *consumed, struct smtp_reply *out)
{
    *consumed = 0;
    if (p->failed)
        return ST_EPROTO;

    for (size_t i = 0; i < len; i++) {
        bool last = false;

        *consumed = i + 1;
        if (data[i] != '\n') {
            /* RFC 5321 section 4.5.3.1.5: 512 octets with the line end,
             * so a byte that leaves no room for the LF breaks the limit
             * now instead of after more input. */
            if (p->line_len >= SMTP_REPLY_LINE_MAX - 1)
                goto fail;
            p->line[p->line_len++] = data[i];
            continue;
        }

        if (take_line(p, &last) != ST_OK)
            goto fail;
        p->line_len = 0;
        if (last) {
            *out = p->partial;
            reset_reply(p);
            return ST_OK;
        }
    }

    *consumed = len;
    return ST_AGAIN;

fail:
    p->failed = 1;
    return ST_EPROTO;
}
