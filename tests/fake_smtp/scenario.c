/* SPDX-License-Identifier: MIT */
/*
 * Parser, matcher and reply renderer for fake-smtp scenario files. A
 * scenario is an ordered list of rules. The built-in defaults are appended
 * after the file's rules, so some rule always matches and a file lists only
 * what differs from a plain, polite server.
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Polite replies to everything a scenario does not mention. */
static const char scenario_defaults[] =
    "greeting 220 fake-smtp.test ESMTP fake-smtp\n"
    "ehlo 250-fake-smtp.test\\n250-PIPELINING\\n250 8BITMIME\n"
    "helo 250 fake-smtp.test\n"
    "mail * 250 2.1.0 Ok\n"
    "rcpt * 550 5.1.1 No such user here\n"
    "data 354 End data with <CR><LF>.<CR><LF>\n"
    "dataend 250 2.0.0 Ok: queued\n"
    "rset 250 2.0.0 Ok\n"
    "noop 250 2.0.0 Ok\n"
    "vrfy 252 2.0.0 Cannot VRFY user\n"
    "starttls 220 2.0.0 Ready to start TLS\n"
    "quit close 221 2.0.0 Bye\n"
    "any 500 5.5.2 Error: command not recognized\n";

#define DURATION_MAX_MS 3600000L
#define COUNT_MAX 1000000L

struct parse_ctx {
    const char *path;
    int line;
    char *err;
    size_t errlen;
};

static int
parse_fail(const struct parse_ctx *pc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    n = snprintf(pc->err, pc->errlen, "%s:%d: %s", pc->path, pc->line, msg);
    if (n < 0 && pc->errlen > 0)
        pc->err[0] = '\0';
    return -1;
}

static void
lower_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t i;

    if (srclen >= dstlen)
        srclen = dstlen - 1;
    for (i = 0; i < srclen; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[srclen] = '\0';
}

/* Parses a decimal count in [0, max]. */
static int
parse_count(const char *s, long max, long *out)
{
    char *end;
    long v;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parses "250", "250ms" (milliseconds) or "3s" (seconds) into ms. */
static int
parse_duration(const char *s, long *out_ms)
{
    char num[32];
    size_t n = strspn(s, "0123456789");
    long v;
    long scale;

    if (n == 0 || n >= sizeof num)
        return -1;
    if (strcmp(s + n, "") == 0 || strcmp(s + n, "ms") == 0)
        scale = 1;
    else if (strcmp(s + n, "s") == 0)
        scale = 1000;
    else
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    if (parse_count(num, DURATION_MAX_MS, &v) != 0)
        return -1;
    if (v > DURATION_MAX_MS / scale)
        return -1;
    *out_ms = v * scale;
    return 0;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Turns reply text with escapes into wire bytes: \n is a line break (CRLF
 * on the wire), \r a bare CR, \t a tab, \\ a backslash and \xHH any octet,
 * NUL included. Stores a heap buffer into rule->reply.
 */
static int
unescape_reply(const struct parse_ctx *pc, struct scn_rule *rule,
               const char *text, size_t len)
{
    char *out = malloc(2 * len + 1);
    size_t i;
    size_t o = 0;
    int hi;
    int lo;

    if (out == NULL)
        return parse_fail(pc, "out of memory");
    for (i = 0; i < len; i++) {
        if (text[i] != '\\') {
            out[o++] = text[i];
            continue;
        }
        if (i + 1 >= len) {
            free(out);
            return parse_fail(pc, "reply ends in a lone backslash");
        }
        i++;
        switch (text[i]) {
        case 'n':
            out[o++] = '\r';
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case '\\':
            out[o++] = '\\';
            break;
        case 'x':
            hi = i + 1 < len ? hex_value(text[i + 1]) : -1;
            lo = i + 2 < len ? hex_value(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return parse_fail(pc, "\\x needs two hex digits");
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
            break;
        default:
            free(out);
            return parse_fail(pc, "unknown escape \\%c", text[i]);
        }
    }
    out[o] = '\0';
    rule->reply = out;
    rule->reply_len = o;
    return 0;
}

static bool
verb_takes_pattern(const char *verb)
{
    return strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0;
}

/* Applies one option token; returns 1 if tok was no option at all. */
static int
parse_option(const struct parse_ctx *pc, struct scn_rule *rule,
             const char *tok)
{
    const char *eq = strchr(tok, '=');
    const char *val;
    size_t klen;

    if (strcmp(tok, "drop") == 0) {
        rule->drop = true;
        return 0;
    }
    if (strcmp(tok, "close") == 0) {
        rule->close = true;
        return 0;
    }
    if (eq == NULL)
        return 1;
    klen = (size_t)(eq - tok);
    val = eq + 1;
#define KEY_IS(k) (klen == sizeof(k) - 1 && strncmp(tok, k, klen) == 0)
    if (KEY_IS("delay")) {
        if (parse_duration(val, &rule->delay_ms) != 0)
            return parse_fail(pc, "invalid duration in %s", tok);
    } else if (KEY_IS("greylist")) {
        if (parse_duration(val, &rule->greylist_ms) != 0)
            return parse_fail(pc, "invalid duration in %s", tok);
    } else if (KEY_IS("limit")) {
        if (parse_count(val, COUNT_MAX, &rule->limit) != 0)
            return parse_fail(pc, "invalid count in %s", tok);
    } else if (KEY_IS("conn")) {
        if (parse_count(val, COUNT_MAX, &rule->conn) != 0)
            return parse_fail(pc, "invalid count in %s", tok);
    } else if (KEY_IS("lines")) {
        if (parse_count(val, COUNT_MAX, &rule->lines) != 0)
            return parse_fail(pc, "invalid count in %s", tok);
    } else if (KEY_IS("pad")) {
        if (parse_count(val, COUNT_MAX, &rule->pad) != 0)
            return parse_fail(pc, "invalid count in %s", tok);
    } else if (KEY_IS("tls")) {
        if (strcmp(val, "yes") == 0)
            rule->tls = SCN_TLS_YES;
        else if (strcmp(val, "no") == 0)
            rule->tls = SCN_TLS_NO;
        else
            return parse_fail(pc, "tls= takes yes or no, not %s", val);
    } else if (strspn(tok, "abcdefghijklmnopqrstuvwxyz") == klen) {
        /* A mistyped option must not turn into reply text unnoticed. */
        return parse_fail(pc, "unknown option %s (put -- before a reply "
                          "that starts like an option)", tok);
    } else {
        return 1;
    }
#undef KEY_IS
    return 0;
}

/* Checks the combinations that the renderer relies on. */
static int
check_rule(const struct parse_ctx *pc, const struct scn_rule *rule)
{
    size_t line_len = rule->reply_len + 2;
    size_t nlines = rule->lines > 0 ? (size_t)rule->lines : 1;

    if (rule->drop && rule->reply != NULL)
        return parse_fail(pc, "drop takes no reply text");
    if (!rule->drop && rule->reply == NULL)
        return parse_fail(pc, "missing reply text (or drop)");
    if (rule->drop)
        return 0;
    if ((rule->lines > 0 || rule->pad > 0) &&
        memchr(rule->reply, '\n', rule->reply_len) != NULL)
        return parse_fail(pc, "lines= and pad= need a one-line reply");
    if (rule->lines > 0 &&
        (rule->reply_len < 3 || !isdigit((unsigned char)rule->reply[0]) ||
         !isdigit((unsigned char)rule->reply[1]) ||
         !isdigit((unsigned char)rule->reply[2])))
        return parse_fail(pc, "lines= needs a reply starting with a code");
    if ((size_t)rule->pad + 2 > line_len)
        line_len = (size_t)rule->pad + 2;
    if (line_len > SCN_REPLY_MAX / nlines)
        return parse_fail(pc, "reply would exceed %u octets",
                          SCN_REPLY_MAX);
    return 0;
}

static size_t
next_token(const char **cursor, const char **start)
{
    const char *p = *cursor;
    size_t n;

    while (*p == ' ' || *p == '\t')
        p++;
    n = strcspn(p, " \t");
    *start = p;
    *cursor = p + n;
    return n;
}

static int
parse_set(const struct parse_ctx *pc, struct scenario *scn,
          const char *cursor)
{
    const char *name;
    const char *value;
    size_t nlen = next_token(&cursor, &name);
    size_t vlen = next_token(&cursor, &value);
    char buf[32];

    if (nlen == 7 && strncmp(name, "timeout", 7) == 0 && vlen > 0 &&
        vlen < sizeof buf) {
        memcpy(buf, value, vlen);
        buf[vlen] = '\0';
        if (parse_duration(buf, &scn->timeout_ms) == 0 &&
            scn->timeout_ms > 0)
            return 0;
    }
    return parse_fail(pc, "expected: set timeout DURATION");
}

/* Consumes option tokens; sets *ended when "--" closed the options. */
static int
parse_rule_options(const struct parse_ctx *pc, struct scn_rule *rule,
                   const char **cursor, bool *ended)
{
    char tok[64];
    const char *start;
    const char *before;
    size_t n;
    int rc;

    for (;;) {
        before = *cursor;
        n = next_token(cursor, &start);
        if (n == 0)
            return 0;
        if (n == 2 && strncmp(start, "--", 2) == 0) {
            *ended = true;
            return 0;
        }
        if (n >= sizeof tok) {
            *cursor = before;
            return 0;
        }
        memcpy(tok, start, n);
        tok[n] = '\0';
        rc = parse_option(pc, rule, tok);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *cursor = before;
            return 0;
        }
    }
}

static int
parse_rule(const struct parse_ctx *pc, struct scenario *scn,
           const char *verb, size_t vlen, const char *cursor)
{
    struct scn_rule *rule;
    const char *start;
    bool ended = false;
    size_t n;
    size_t i;

    if (scn->nrules >= SCN_MAX_RULES)
        return parse_fail(pc, "more than %d rules", SCN_MAX_RULES);
    if (vlen >= SCN_VERB_MAX)
        return parse_fail(pc, "command name too long");
    rule = &scn->rules[scn->nrules];
    memset(rule, 0, sizeof *rule);
    rule->source_line = pc->line;
    for (i = 0; i < vlen; i++)
        rule->verb[i] = (char)toupper((unsigned char)verb[i]);

    /* Options may stand before the pattern too: "mail tls=no * 530 ...". */
    if (parse_rule_options(pc, rule, &cursor, &ended) != 0)
        goto fail;
    if (verb_takes_pattern(rule->verb)) {
        n = next_token(&cursor, &start);
        if (n == 0)
            return parse_fail(pc, "%s needs an address pattern", rule->verb);
        if (n >= SCN_PATTERN_MAX)
            return parse_fail(pc, "address pattern too long");
        rule->has_pattern = true;
        if (!(n == 2 && strncmp(start, "<>", 2) == 0))
            lower_copy(rule->pattern, sizeof rule->pattern, start, n);
    }
    if (!ended && parse_rule_options(pc, rule, &cursor, &ended) != 0)
        goto fail;

    while (*cursor == ' ' || *cursor == '\t')
        cursor++;
    n = strlen(cursor);
    while (n > 0 && (cursor[n - 1] == ' ' || cursor[n - 1] == '\t'))
        n--;
    if (n > 0 && unescape_reply(pc, rule, cursor, n) != 0)
        goto fail;
    if (check_rule(pc, rule) != 0)
        goto fail;
    scn->nrules++;
    return 0;

fail:
    free(rule->reply);
    rule->reply = NULL;
    return -1;
}

static int
parse_line(const struct parse_ctx *pc, struct scenario *scn, char *line)
{
    const char *cursor = line;
    const char *verb;
    size_t len = strlen(line);
    size_t vlen;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    vlen = next_token(&cursor, &verb);
    if (vlen == 0 || verb[0] == '#')
        return 0;
    if (vlen == 3 && strncmp(verb, "set", 3) == 0)
        return parse_set(pc, scn, cursor);
    return parse_rule(pc, scn, verb, vlen, cursor);
}

static int
parse_defaults(struct scenario *scn, char *err, size_t errlen)
{
    struct parse_ctx pc = { "(built-in defaults)", 0, err, errlen };
    const char *p = scenario_defaults;
    char line[256];
    size_t n;

    while (*p != '\0') {
        n = strcspn(p, "\n");
        if (n >= sizeof line)
            return parse_fail(&pc, "default rule too long");
        memcpy(line, p, n);
        line[n] = '\0';
        pc.line++;
        if (parse_line(&pc, scn, line) != 0)
            return -1;
        scn->rules[scn->nrules - 1].source_line = 0;
        p += n;
        if (*p == '\n')
            p++;
    }
    return 0;
}

int
scenario_load(struct scenario *scn, const char *path, char *err,
              size_t errlen)
{
    struct parse_ctx pc = { path, 0, err, errlen };
    char *line;
    FILE *fp;
    size_t len;
    int rc = -1;

    memset(scn, 0, sizeof *scn);
    scn->timeout_ms = 30000;
    line = malloc(SCN_LINE_MAX);
    if (line == NULL)
        return parse_fail(&pc, "out of memory");
    fp = fopen(path, "r");
    if (fp == NULL) {
        parse_fail(&pc, "failed to open: %s", strerror(errno));
        goto out_free_line;
    }
    while (fgets(line, SCN_LINE_MAX, fp) != NULL) {
        pc.line++;
        len = strlen(line);
        if (len == SCN_LINE_MAX - 1 && line[len - 1] != '\n') {
            parse_fail(&pc, "line longer than %d octets", SCN_LINE_MAX - 2);
            goto out_close;
        }
        if (parse_line(&pc, scn, line) != 0)
            goto out_close;
    }
    if (ferror(fp)) {
        parse_fail(&pc, "read error");
        goto out_close;
    }
    rc = parse_defaults(scn, err, errlen);

out_close:
    fclose(fp);
out_free_line:
    free(line);
    if (rc != 0)
        scenario_free(scn);
    return rc;
}

void
scenario_free(struct scenario *scn)
{
    size_t i;

    for (i = 0; i < scn->nrules; i++) {
        free(scn->rules[i].reply);
        scn->rules[i].reply = NULL;
    }
    scn->nrules = 0;
}

static bool
rule_matches(const struct scn_rule *rule, const struct scn_command *cmd,
             unsigned used)
{
    bool any = strcmp(rule->verb, "ANY") == 0;

    if (any && (strcmp(cmd->verb, "GREETING") == 0 ||
                strcmp(cmd->verb, "DATAEND") == 0))
        return false;
    if (!any && strcmp(rule->verb, cmd->verb) != 0)
        return false;
    if (rule->has_pattern &&
        fnmatch(rule->pattern, cmd->address != NULL ? cmd->address : "",
                0) != 0)
        return false;
    if (rule->tls == SCN_TLS_YES && !cmd->tls)
        return false;
    if (rule->tls == SCN_TLS_NO && cmd->tls)
        return false;
    if (rule->conn != 0 && rule->conn != cmd->conn)
        return false;
    if (rule->limit != 0 && used >= (unsigned long)rule->limit)
        return false;
    return true;
}

size_t
scenario_match(const struct scenario *scn, const struct scn_command *cmd,
               const unsigned *uses)
{
    size_t i;

    for (i = 0; i < scn->nrules; i++) {
        if (rule_matches(&scn->rules[i], cmd, uses[i]))
            return i;
    }
    /* The defaults end in "any", so only GREETING or DATAEND get here. */
    return scn->nrules - 1;
}

static size_t
render_line(const struct scn_rule *rule, long index, char *out)
{
    size_t n;

    if (rule->lines > 0) {
        memcpy(out, rule->reply, 3);
        out[3] = index + 1 < rule->lines ? '-' : ' ';
        n = rule->reply_len > 4 ? rule->reply_len - 4 : 0;
        memcpy(out + 4, rule->reply + 4, n);
        n += 4;
    } else {
        memcpy(out, rule->reply, rule->reply_len);
        n = rule->reply_len;
    }
    while (n < (size_t)rule->pad)
        out[n++] = 'x';
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

char *
scenario_render(const struct scn_rule *rule, size_t *len)
{
    size_t line_max = rule->reply_len + 2;
    long nlines = rule->lines > 0 ? rule->lines : 1;
    char *out;
    size_t o = 0;
    long i;

    if ((size_t)rule->pad + 2 > line_max)
        line_max = (size_t)rule->pad + 2;
    if (line_max < 6)
        line_max = 6;
    out = malloc(line_max * (size_t)nlines);
    if (out == NULL)
        return NULL;
    for (i = 0; i < nlines; i++)
        o += render_line(rule, i, out + o);
    *len = o;
    return out;
}
