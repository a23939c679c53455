/* SPDX-License-Identifier: MIT */
/* Round trips and hostile inputs for the msgpack result and probe codecs. */
#include <string.h>

#include "check.h"
#include "codec.h"

static void
test_result_round_trip(void)
{
    struct result in = {0};
    struct result out;
    msgpack_sbuffer sb;

    in.id = "order-42";
    in.email = "Alice@Example.ORG";
    in.address = "Alice@example.org";
    in.status = VS_UNDELIVERABLE;
    in.reason = VR_MAILBOX_NOT_FOUND;
    in.catch_all = TRI_NO;
    in.has_smtp = true;
    in.smtp.stage = SMTP_STAGE_RCPT;
    in.smtp.code = 550;
    strcpy(in.smtp.enhanced, "5.1.1");
    strcpy(in.smtp.text, "<Alice@example.org>: Recipient address rejected");
    in.mx = "mx1.example.org";
    in.mx_ip = "192.0.2.25";
    in.attempts = 2;
    in.checked_at = 1764000000123;
    in.duration_ms = 812;
    in.worker = "w1";

    msgpack_sbuffer_init(&sb);
    CHECK_INT(codec_encode_result(&in, &sb), ST_OK);
    CHECK_INT(codec_decode_result(sb.data, sb.size, &out), ST_OK);
    CHECK_STR(out.id, "order-42");
    CHECK_STR(out.email, "Alice@Example.ORG");
    CHECK_STR(out.address, "Alice@example.org");
    CHECK_INT(out.status, VS_UNDELIVERABLE);
    CHECK_INT(out.reason, VR_MAILBOX_NOT_FOUND);
    CHECK_INT(out.catch_all, TRI_NO);
    CHECK(out.has_smtp);
    CHECK_INT(out.smtp.stage, SMTP_STAGE_RCPT);
    CHECK_INT(out.smtp.code, 550);
    CHECK_STR(out.smtp.enhanced, "5.1.1");
    CHECK_STR(out.smtp.text, in.smtp.text);
    CHECK_STR(out.mx, "mx1.example.org");
    CHECK_STR(out.mx_ip, "192.0.2.25");
    CHECK_INT(out.attempts, 2);
    CHECK_INT(out.checked_at, 1764000000123);
    CHECK_INT(out.duration_ms, 812);
    CHECK_STR(out.worker, "w1");
    codec_result_fini(&out);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_result_nils(void)
{
    struct result in = {0};
    struct result out;
    msgpack_sbuffer sb;

    in.id = "x";
    in.email = "not an address";
    in.status = VS_UNDELIVERABLE;
    in.reason = VR_SYNTAX;
    in.catch_all = TRI_UNKNOWN;
    msgpack_sbuffer_init(&sb);
    codec_encode_result(&in, &sb);
    CHECK_INT(codec_decode_result(sb.data, sb.size, &out), ST_OK);
    CHECK(out.address == NULL);
    CHECK(out.mx == NULL);
    CHECK(out.worker == NULL);
    CHECK(!out.has_smtp);
    CHECK_INT(out.catch_all, TRI_UNKNOWN);
    CHECK_INT(out.reason, VR_SYNTAX);
    codec_result_fini(&out);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_probe_round_trip(void)
{
    char *ips[] = {"127.0.0.10", "::1"};
    struct mx_host mx[2] = {{"mx1.test", 10, ips, 2}, {"mx2.test", 20, ips, 1}};
    struct job jobs[2] = {
        {"1-0", "a", "a@x.test", "a@x.test", "b1", "app:r", 0, 0},
        {"1-1", "b", "b@x.test", "b@x.test", NULL, NULL, 1764000000000, 3},
    };
    struct probe_item in = {0};
    struct probe_item out;
    msgpack_sbuffer sb;

    in.domain = "x.test";
    in.mx = mx;
    in.n_mx = 2;
    in.jobs = jobs;
    in.n_jobs = 2;
    in.catchall_local = "marlow.quince47";
    in.catch_all = TRI_UNKNOWN;
    in.attempt = 1;
    in.first_ms = 1764000000000;

    msgpack_sbuffer_init(&sb);
    CHECK_INT(codec_encode_probe(&in, &sb), ST_OK);
    CHECK_INT(codec_decode_probe(sb.data, sb.size, &out), ST_OK);
    CHECK_STR(out.domain, "x.test");
    CHECK_INT(out.n_mx, 2);
    CHECK_STR(out.mx[0].name, "mx1.test");
    CHECK_INT(out.mx[0].pref, 10);
    CHECK_INT(out.mx[0].n_ips, 2);
    CHECK_STR(out.mx[0].ips[1], "::1");
    CHECK_INT(out.mx[1].n_ips, 1);
    CHECK_INT(out.n_jobs, 2);
    CHECK_STR(out.jobs[0].reply, "app:r");
    CHECK_STR(out.jobs[0].batch, "b1");
    CHECK(out.jobs[1].batch == NULL);
    CHECK_INT(out.jobs[1].attempts, 3);
    CHECK_INT(out.jobs[1].first_probe_ms, 1764000000000);
    CHECK_STR(out.catchall_local, "marlow.quince47");
    CHECK_INT(out.catch_all, TRI_UNKNOWN);
    CHECK_INT(out.attempt, 1);
    codec_probe_fini(&out);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_decode_rejects_garbage(void)
{
    static const char not_map[] = "\x93\x01\x02\x03";
    static const char truncated[] = "\x82\xa2id";
    static const char wrong_type[] = "\x82\xa2id\x05\xa5" "email\xa1x";
    struct result res;
    struct probe_item item;

    CHECK_INT(codec_decode_result(not_map, sizeof not_map - 1, &res),
              ST_EPROTO);
    CHECK_INT(codec_decode_result(truncated, sizeof truncated - 1, &res),
              ST_EPROTO);
    CHECK_INT(codec_decode_result(wrong_type, sizeof wrong_type - 1, &res),
              ST_EPROTO);
    CHECK_INT(codec_decode_probe("", 0, &item), ST_EPROTO);
    CHECK_INT(codec_decode_probe(not_map, sizeof not_map - 1, &item),
              ST_EPROTO);
}

static void
test_utf8_dup_sanitises(void)
{
    char *s;

    s = codec_utf8_dup("ok\r\nDATA", 8, 100);
    CHECK_STR(s, "ok??DATA");
    free(s);
    s = codec_utf8_dup("caf\xc3\xa9", 5, 100);
    CHECK_STR(s, "caf\xc3\xa9");
    free(s);
    s = codec_utf8_dup("bad\xc3(\xff", 6, 100);
    CHECK_STR(s, "bad?(?");
    free(s);
    s = codec_utf8_dup("\xed\xa0\x80", 3, 100); /* a UTF-16 surrogate */
    CHECK_STR(s, "???");
    free(s);
    s = codec_utf8_dup("abcdef", 6, 3);
    CHECK_STR(s, "abc");
    free(s);
}

int
main(void)
{
    test_result_round_trip();
    test_result_nils();
    test_probe_round_trip();
    test_decode_rejects_garbage();
    test_utf8_dup_sanitises();
    return check_exit("test_codec");
}
