/* SPDX-License-Identifier: MIT */
/*
 * Tests of the client's CSV and JSON-lines rendering: quoting of commas,
 * quotes and line breaks, JSON escapes of control characters, nil fields,
 * and replacement of bytes that are not UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#include "output.h"

/* Runs fn on a memory stream and returns what it wrote (caller frees). */
static char *
render_field(void (*fn)(FILE *, const char *), const char *s)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        abort();
    fn(f, s);
    fclose(f);
    return buf;
}

static char *
render_result(enum output_format format, const struct result *res)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        abort();
    output_result(f, format, res);
    fclose(f);
    return buf;
}

static void
check_field(void (*fn)(FILE *, const char *), const char *in,
            const char *want)
{
    char *got = render_field(fn, in);

    CHECK_STR(got, want);
    free(got);
}

static void
test_csv_quoting(void)
{
    check_field(output_csv_field, "plain@example.test",
                "plain@example.test");
    check_field(output_csv_field, "a,b@example.test", "\"a,b@example.test\"");
    check_field(output_csv_field, "say \"hi\"", "\"say \"\"hi\"\"\"");
    check_field(output_csv_field, "line1\nline2", "\"line1\nline2\"");
    check_field(output_csv_field, "cr\rhere", "\"cr\rhere\"");
    check_field(output_csv_field, " lead", "\" lead\"");
    check_field(output_csv_field, "trail ", "\"trail \"");
    check_field(output_csv_field, "", "");
    check_field(output_csv_field, NULL, "");
    check_field(output_csv_field, "j\xC3\xBCrgen", "j\xC3\xBCrgen");
    check_field(output_csv_field, "bad\xFF", "bad\xEF\xBF\xBD");
}

static void
test_json_escaping(void)
{
    check_field(output_json_string, "plain", "\"plain\"");
    check_field(output_json_string, "q\"b\\s", "\"q\\\"b\\\\s\"");
    check_field(output_json_string, "a\nb\rc\td", "\"a\\nb\\rc\\td\"");
    check_field(output_json_string, "\b\f", "\"\\b\\f\"");
    check_field(output_json_string, "nul\x01\x1f", "\"nul\\u0001\\u001F\"");
    check_field(output_json_string, "del\x7f", "\"del\\u007F\"");
    check_field(output_json_string, "c1\xC2\x9B", "\"c1\\u009B\"");
    check_field(output_json_string, "\xE2\x9C\x93 ok", "\"\xE2\x9C\x93 ok\"");
    check_field(output_json_string, "cut\xE2\x9C", "\"cut\xEF\xBF\xBD"
                                                   "\xEF\xBF\xBD\"");
    check_field(output_json_string, "", "\"\"");
    check_field(output_json_string, NULL, "null");
}

static void
test_format_names(void)
{
    enum output_format f = OUTPUT_CSV;

    CHECK(output_format_parse("jsonl", &f));
    CHECK_INT(f, OUTPUT_JSONL);
    CHECK(output_format_parse("csv", &f));
    CHECK_INT(f, OUTPUT_CSV);
    CHECK(output_format_parse("json", &f));
    CHECK_INT(f, OUTPUT_JSONL);
    CHECK(!output_format_parse("xml", &f));
    CHECK(!output_format_parse("", &f));
}

static void
fill_full(struct result *r)
{
    memset(r, 0, sizeof *r);
    r->id = "b1:3";
    r->email = "Bob, \"the\" builder@Example.test";
    r->address = "bob@example.test";
    r->status = VS_UNDELIVERABLE;
    r->reason = VR_MAILBOX_NOT_FOUND;
    r->catch_all = TRI_NO;
    r->has_smtp = true;
    r->smtp.stage = SMTP_STAGE_RCPT;
    r->smtp.code = 550;
    snprintf(r->smtp.enhanced, sizeof r->smtp.enhanced, "5.1.1");
    snprintf(r->smtp.text, sizeof r->smtp.text, "no such user, \"bob\"");
    r->mx = "mx1.example.test";
    r->mx_ip = "127.0.0.5";
    r->attempts = 1;
    r->checked_at = 1767225600123;
    r->duration_ms = 42;
    r->worker = "w1";
}

static void
fill_nil(struct result *r)
{
    memset(r, 0, sizeof *r);
    r->id = "b1:4";
    r->email = "not an address";
    r->address = NULL;
    r->status = VS_UNDELIVERABLE;
    r->reason = VR_SYNTAX;
    r->catch_all = TRI_UNKNOWN;
    r->has_smtp = false;
    r->checked_at = 5;
}

static void
test_csv_rows(void)
{
    struct result r;
    char *got;

    fill_full(&r);
    got = render_result(OUTPUT_CSV, &r);
    CHECK_STR(got, "\"Bob, \"\"the\"\" builder@Example.test\",undeliverable,"
                   "mailbox_not_found,bob@example.test,false,"
                   "mx1.example.test,550,5.1.1,"
                   "\"no such user, \"\"bob\"\"\",b1:3\n");
    free(got);

    r.catch_all = TRI_YES;
    r.smtp.enhanced[0] = '\0';
    got = render_result(OUTPUT_CSV, &r);
    CHECK(strstr(got, ",true,mx1.example.test,550,,") != NULL);
    free(got);

    fill_nil(&r);
    got = render_result(OUTPUT_CSV, &r);
    CHECK_STR(got, "not an address,undeliverable,syntax,,,,,,,b1:4\n");
    free(got);
}

static void
test_json_lines(void)
{
    struct result r;
    char *got;

    fill_full(&r);
    got = render_result(OUTPUT_JSONL, &r);
    CHECK_STR(got,
              "{\"id\":\"b1:3\",\"email\":\"Bob, \\\"the\\\" "
              "builder@Example.test\",\"address\":\"bob@example.test\","
              "\"status\":\"undeliverable\",\"reason\":\"mailbox_not_found\","
              "\"catch_all\":false,\"smtp\":{\"stage\":\"rcpt\",\"code\":550,"
              "\"enhanced\":\"5.1.1\",\"text\":\"no such user, \\\"bob\\\"\"},"
              "\"mx\":\"mx1.example.test\",\"mx_ip\":\"127.0.0.5\","
              "\"attempts\":1,\"checked_at\":1767225600123,"
              "\"duration_ms\":42,\"worker\":\"w1\"}\n");
    free(got);

    r.smtp.enhanced[0] = '\0';
    r.catch_all = TRI_YES;
    got = render_result(OUTPUT_JSONL, &r);
    CHECK(strstr(got, "\"enhanced\":null") != NULL);
    CHECK(strstr(got, "\"catch_all\":true") != NULL);
    free(got);

    fill_nil(&r);
    got = render_result(OUTPUT_JSONL, &r);
    CHECK_STR(got,
              "{\"id\":\"b1:4\",\"email\":\"not an address\","
              "\"address\":null,\"status\":\"undeliverable\","
              "\"reason\":\"syntax\",\"catch_all\":null,\"smtp\":null,"
              "\"mx\":null,\"mx_ip\":null,\"attempts\":0,\"checked_at\":5,"
              "\"duration_ms\":0,\"worker\":null}\n");
    free(got);
}

static void
test_csv_header(void)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        abort();
    output_csv_header(f);
    fclose(f);
    CHECK_STR(buf, "email,status,reason,address,catch_all,mx,smtp_code,"
                   "smtp_enhanced,smtp_text,id\n");
    free(buf);
}

int
main(void)
{
    test_csv_quoting();
    test_json_escaping();
    test_format_names();
    test_csv_header();
    test_csv_rows();
    test_json_lines();
    return check_exit("test_output");
}
