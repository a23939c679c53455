/* SPDX-License-Identifier: MIT */
/*
 * CSV and JSON-lines rendering of results. It writes to a stdio stream and
 * leaves error checks (ferror, fflush) to the caller, which has the file
 * name to report.
 */
#include "output.h"

#include <inttypes.h>
#include <string.h>

#include "utf8.h"
#include "verdict.h"

/* U+FFFD REPLACEMENT CHARACTER, written for each byte that is not UTF-8. */
static const char replacement[] = "\xEF\xBF\xBD";

bool
output_format_parse(const char *name, enum output_format *out)
{
    if (strcmp(name, "csv") == 0) {
        *out = OUTPUT_CSV;
        return true;
    }
    if (strcmp(name, "jsonl") == 0 || strcmp(name, "json") == 0) {
        *out = OUTPUT_JSONL;
        return true;
    }
    return false;
}

/*
 * Returns the length of the valid UTF-8 character at s (len bytes left) and
 * its code point, or 0 for a byte that starts no valid character.
 */
static size_t
next_char(const char *s, size_t len, uint32_t *cp)
{
    return utf8_decode((const unsigned char *)s, len, cp);
}

static bool
csv_needs_quotes(const char *s)
{
    size_t len = strlen(s);

    if (len == 0)
        return false;
    if (s[0] == ' ' || s[len - 1] == ' ')
        return true;
    return strpbrk(s, ",\"\r\n") != NULL;
}

void
output_csv_field(FILE *out, const char *s)
{
    bool quoted;
    size_t len;
    size_t i = 0;

    if (s == NULL)
        return;

    quoted = csv_needs_quotes(s);
    len = strlen(s);
    if (quoted)
        fputc('"', out);
    while (i < len) {
        uint32_t cp;
        size_t n = next_char(s + i, len - i, &cp);

        if (n == 0) {
            fputs(replacement, out);
            i++;
            continue;
        }
        /* RFC 4180 section 2: a quote inside a quoted field is doubled. */
        if (cp == '"')
            fputc('"', out);
        fwrite(s + i, 1, n, out);
        i += n;
    }
    if (quoted)
        fputc('"', out);
}

static void
json_escape_char(FILE *out, uint32_t cp)
{
    char buf[8];

    switch (cp) {
    case '"':
        fputs("\\\"", out);
        return;
    case '\\':
        fputs("\\\\", out);
        return;
    case '\n':
        fputs("\\n", out);
        return;
    case '\r':
        fputs("\\r", out);
        return;
    case '\t':
        fputs("\\t", out);
        return;
    case '\b':
        fputs("\\b", out);
        return;
    case '\f':
        fputs("\\f", out);
        return;
    default:
        break;
    }
    /* Every control point is below U+00A0, so four hex digits suffice. */
    if (snprintf(buf, sizeof buf, "\\u%04X", (unsigned)cp) > 0)
        fputs(buf, out);
}

void
output_json_string(FILE *out, const char *s)
{
    size_t len;
    size_t i = 0;

    if (s == NULL) {
        fputs("null", out);
        return;
    }

    len = strlen(s);
    fputc('"', out);
    while (i < len) {
        uint32_t cp;
        size_t n = next_char(s + i, len - i, &cp);

        if (n == 0) {
            fputs(replacement, out);
            i++;
            continue;
        }
        /*
         * RFC 8259 section 7 requires escaping only below U+0020; DEL and
         * the C1 controls are escaped too, so no terminal control sequence
         * reaches a reader of the output.
         */
        if (cp == '"' || cp == '\\' || utf8_is_control(cp))
            json_escape_char(out, cp);
        else
            fwrite(s + i, 1, n, out);
        i += n;
    }
    fputc('"', out);
}

static void
write_int(FILE *out, int64_t value)
{
    char buf[24];

    if (snprintf(buf, sizeof buf, "%" PRId64, value) > 0)
        fputs(buf, out);
}

static const char *
catch_all_str(enum tristate t)
{
    switch (t) {
    case TRI_YES:
        return "true";
    case TRI_NO:
        return "false";
    case TRI_UNKNOWN:
        return NULL;
    default:
        return NULL;
    }
}

void
output_csv_header(FILE *out)
{
    fputs(OUTPUT_CSV_HEADER, out);
}

void
output_csv_row(FILE *out, const struct result *res)
{
    output_csv_field(out, res->email);
    fputc(',', out);
    output_csv_field(out, verdict_status_str(res->status));
    fputc(',', out);
    output_csv_field(out, verdict_reason_str(res->reason));
    fputc(',', out);
    output_csv_field(out, res->address);
    fputc(',', out);
    output_csv_field(out, catch_all_str(res->catch_all));
    fputc(',', out);
    output_csv_field(out, res->mx);
    fputc(',', out);
    if (res->has_smtp)
        write_int(out, res->smtp.code);
    fputc(',', out);
    if (res->has_smtp)
        output_csv_field(out, res->smtp.enhanced);
    fputc(',', out);
    if (res->has_smtp)
        output_csv_field(out, res->smtp.text);
    fputc(',', out);
    output_csv_field(out, res->id);
    fputc('\n', out);
}

static void
json_key(FILE *out, const char *key, bool first)
{
    if (!first)
        fputc(',', out);
    output_json_string(out, key);
    fputc(':', out);
}

static void
json_smtp(FILE *out, const struct result *res)
{
    const struct smtp_evidence *e = &res->smtp;

    if (!res->has_smtp) {
        fputs("null", out);
        return;
    }
    fputc('{', out);
    json_key(out, "stage", true);
    output_json_string(out, smtp_stage_str(e->stage));
    json_key(out, "code", false);
    write_int(out, e->code);
    json_key(out, "enhanced", false);
    output_json_string(out, e->enhanced[0] != '\0' ? e->enhanced : NULL);
    json_key(out, "text", false);
    output_json_string(out, e->text);
    fputc('}', out);
}

void
output_json_line(FILE *out, const struct result *res)
{
    const char *catch_all = catch_all_str(res->catch_all);

    fputc('{', out);
    json_key(out, "id", true);
    output_json_string(out, res->id);
    json_key(out, "email", false);
    output_json_string(out, res->email);
    json_key(out, "address", false);
    output_json_string(out, res->address);
    json_key(out, "status", false);
    output_json_string(out, verdict_status_str(res->status));
    json_key(out, "reason", false);
    output_json_string(out, verdict_reason_str(res->reason));
    json_key(out, "catch_all", false);
    fputs(catch_all != NULL ? catch_all : "null", out);
    json_key(out, "smtp", false);
    json_smtp(out, res);
    json_key(out, "mx", false);
    output_json_string(out, res->mx);
    json_key(out, "mx_ip", false);
    output_json_string(out, res->mx_ip);
    json_key(out, "attempts", false);
    write_int(out, res->attempts);
    json_key(out, "checked_at", false);
    write_int(out, res->checked_at);
    json_key(out, "duration_ms", false);
    write_int(out, res->duration_ms);
    json_key(out, "worker", false);
    output_json_string(out, res->worker);
    fputs("}\n", out);
}

void
output_result(FILE *out, enum output_format format, const struct result *res)
{
    switch (format) {
    case OUTPUT_CSV:
        output_csv_row(out, res);
        return;
    case OUTPUT_JSONL:
        output_json_line(out, res);
        return;
    default:
        output_json_line(out, res);
        return;
    }
}
