/* SPDX-License-Identifier: MIT */
/*
 * A test-only tool that plays the fleet's last step: it encodes one result
 * map with codec_encode_result() and stores it in Redis with RPUSH (a reply
 * list) or SET (a result:<id> key), so client tests need no coordinator or
 * worker. It is not installed.
 *
 * Usage: put_result HOST PORT rpush|set KEY [field=value...]
 * Fields: id email address status reason catch_all (true, false or nil)
 * stage code enhanced text (any of them makes smtp non-nil) mx mx_ip
 * attempts checked_at duration_ms worker. Absent strings are nil.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "verdict.h"

static int
fail(const char *what, const char *value)
{
    fprintf(stderr, "put_result: %s \"%s\"\n", what, value);
    return 2;
}

static int
set_smtp(struct result *r, const char *key, const char *value)
{
    r->has_smtp = true;
    if (strcmp(key, "stage") == 0)
        return smtp_stage_parse(value, &r->smtp.stage) ? 0 : -1;
    if (strcmp(key, "code") == 0) {
        r->smtp.code = atoi(value);
        return 0;
    }
    if (strcmp(key, "enhanced") == 0) {
        snprintf(r->smtp.enhanced, sizeof r->smtp.enhanced, "%s", value);
        return 0;
    }
    snprintf(r->smtp.text, sizeof r->smtp.text, "%s", value);
    return 0;
}

/* Sets one field; value points into argv, which outlives r. */
static int
set_field(struct result *r, const char *key, char *value)
{
    if (strcmp(key, "id") == 0)
        r->id = value;
    else if (strcmp(key, "email") == 0)
        r->email = value;
    else if (strcmp(key, "address") == 0)
        r->address = value;
    else if (strcmp(key, "status") == 0)
        return verdict_status_parse(value, &r->status) ? 0 : -1;
    else if (strcmp(key, "reason") == 0)
        return verdict_reason_parse(value, &r->reason) ? 0 : -1;
    else if (strcmp(key, "catch_all") == 0)
        r->catch_all = strcmp(value, "true") == 0    ? TRI_YES
                       : strcmp(value, "false") == 0 ? TRI_NO
                                                     : TRI_UNKNOWN;
    else if (strcmp(key, "stage") == 0 || strcmp(key, "code") == 0 ||
             strcmp(key, "enhanced") == 0 || strcmp(key, "text") == 0)
        return set_smtp(r, key, value);
    else if (strcmp(key, "mx") == 0)
        r->mx = value;
    else if (strcmp(key, "mx_ip") == 0)
        r->mx_ip = value;
    else if (strcmp(key, "attempts") == 0)
        r->attempts = atoi(value);
    else if (strcmp(key, "checked_at") == 0)
        r->checked_at = atoll(value);
    else if (strcmp(key, "duration_ms") == 0)
        r->duration_ms = atoll(value);
    else if (strcmp(key, "worker") == 0)
        r->worker = value;
    else
        return -1;
    return 0;
}

static int
store(const char *host, int port, const char *cmd, const char *key,
      const msgpack_sbuffer *sb)
{
    redisContext *c = redisConnect(host, port);
    redisReply *reply;
    int rc = 0;

    if (c == NULL || c->err) {
        fprintf(stderr, "put_result: cannot connect to %s:%d\n", host, port);
        return 1;
    }
    reply = redisCommand(c, "%s %s %b", cmd, key, sb->data, sb->size);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "put_result: %s %s failed\n", cmd, key);
        rc = 1;
    }
    freeReplyObject(reply);
    redisFree(c);
    return rc;
}

int
main(int argc, char **argv)
{
    struct result r;
    msgpack_sbuffer sb;
    int rc;

    if (argc < 5 || (strcmp(argv[3], "rpush") != 0 &&
                     strcmp(argv[3], "set") != 0)) {
        fprintf(stderr, "usage: put_result HOST PORT rpush|set KEY "
                        "[field=value...]\n");
        return 2;
    }
    memset(&r, 0, sizeof r);
    r.id = "";
    r.email = "";
    r.catch_all = TRI_UNKNOWN;
    r.status = VS_UNKNOWN;
    r.reason = VR_TEMPORARY_FAILURE;
    for (int i = 5; i < argc; i++) {
        char *eq = strchr(argv[i], '=');

        if (eq == NULL)
            return fail("argument is not field=value:", argv[i]);
        *eq = '\0';
        if (set_field(&r, argv[i], eq + 1) != 0)
            return fail("invalid field or value for", argv[i]);
    }

    msgpack_sbuffer_init(&sb);
    if (codec_encode_result(&r, &sb) != ST_OK) {
        msgpack_sbuffer_destroy(&sb);
        return fail("cannot encode result", r.id);
    }
    rc = store(argv[1], atoi(argv[2]), argv[3], argv[4], &sb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
