/* SPDX-License-Identifier: MIT */
/*
 * Job intake. Every field is client input: lengths are bounded, text is
 * made valid UTF-8 before it is kept, and the address goes through the
 * RFC 5321 syntax check on its raw bytes, so CR, LF or NUL anywhere in it
 * makes the job a syntax answer and never reaches a worker.
 */
#include "intake.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "codec.h"
#include "dispatch.h"
#include "domains.h"
#include "log.h"
#include "xalloc.h"

/* The fields of one entry, borrowed from the reply. */
struct intake_fields {
    const redisReply *email;
    const redisReply *id;
    const redisReply *batch;
    const redisReply *reply;
};

static void
intake_read_fields(const redisReply *list, struct intake_fields *f)
{
    memset(f, 0, sizeof *f);
    if (list == NULL || list->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < list->elements; i += 2) {
        const redisReply *k = list->element[i];
        const redisReply *v = list->element[i + 1];
        const redisReply **slot = NULL;

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "email") == 0)
            slot = &f->email;
        else if (strcmp(k->str, "id") == 0)
            slot = &f->id;
        else if (strcmp(k->str, "batch") == 0)
            slot = &f->batch;
        else if (strcmp(k->str, "reply") == 0)
            slot = &f->reply;
        /* The first occurrence of a field wins; unknown ones are ignored. */
        if (slot != NULL && *slot == NULL)
            *slot = v;
    }
}

/* Returns a copy of v when it is non-empty, at most max bytes, valid
 * UTF-8 and free of control characters; NULL otherwise. */
static char *
intake_clean_copy(const redisReply *v, size_t max)
{
    char *copy;

    if (v == NULL || v->len == 0 || v->len > max)
        return NULL;
    copy = codec_utf8_dup(v->str, v->len, max);
    if (strlen(copy) != v->len || memcmp(copy, v->str, v->len) != 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

static void
intake_fill_job(struct job *job, const char *entry,
                const struct intake_fields *f)
{
    struct log_ctx lctx = {.job = entry};

    memset(job, 0, sizeof *job);
    job->entry = xstrdup(entry);
    job->id = intake_clean_copy(f->id, JOB_ID_MAX);
    if (job->id == NULL) {
        if (f->id != NULL)
            log_warn(&lctx, "ev=job_id_invalid detail=\"id field is empty, "
                     "too long or not clean UTF-8; using the entry id\"");
        job->id = xstrdup(entry);
    }
    job->batch = intake_clean_copy(f->batch, JOB_BATCH_MAX);
    if (job->batch == NULL && f->batch != NULL)
        log_warn(&lctx, "ev=job_batch_invalid detail=ignored");
    job->reply = intake_clean_copy(f->reply, JOB_REPLY_MAX);
    if (job->reply == NULL && f->reply != NULL)
        log_warn(&lctx, "ev=job_reply_invalid detail=ignored");
    if (f->email != NULL)
        job->email = codec_utf8_dup(f->email->str, f->email->len,
                                    JOB_EMAIL_MAX);
    else
        job->email = xstrdup("");
}

/* Routes a job whose fields are filled; takes it. */
static void
intake_route(struct coordinator *co, struct job *job,
             const struct intake_fields *f)
{
    struct address addr;
    enum address_error err;

    if (f->email == NULL) {
        dispatch_answer_take(co, job, 1, VR_SYNTAX, "missing_email");
        return;
    }
    if (f->email->len > JOB_EMAIL_MAX) {
        dispatch_answer_take(co, job, 1, VR_SYNTAX, "too_long");
        return;
    }
    err = address_parse(f->email->str, f->email->len, &addr);
    if (err != ADDRESS_OK) {
        dispatch_answer_take(co, job, 1, VR_SYNTAX, address_error_name(err));
        return;
    }
    job->address = xstrdup(addr.normalized);
    domains_add_job_take(co, addr.domain, job);
}

void
intake_entry(struct coordinator *co, const redisReply *entry,
             long long dead_deliveries)
{
    struct intake_fields f;
    const char *id;
    struct job job;

    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY ||
        entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING)
        return;
    id = entry->element[0]->str;
    if (strmap_get(&co->entries, id) != NULL)
        return;
    if (entry->element[1]->type != REDIS_REPLY_ARRAY) {
        /* Deleted from the stream while pending: nothing left to answer. */
        char jobs[KEYS_NAME_MAX];

        keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
        redis_conn_commandf(co->rc_cmd, NULL, NULL, "XACK %s %s %s", jobs,
                            KEYS_GROUP_COORDINATOR, id);
        return;
    }
    intake_read_fields(entry->element[1], &f);
    intake_fill_job(&job, id, &f);
    /* Until its write completes the entry is ours: a second read of our
     * pending list must not take it twice. */
    strmap_put(&co->entries, id, co);

    if (dead_deliveries > 0) {
        dispatch_dead_letter_take(co, &job, dead_deliveries);
        return;
    }
    intake_route(co, &job, &f);
}

void
intake_entries(struct coordinator *co, const redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++)
        intake_entry(co, entries->element[i], 0);
    domains_flush(co);
}
