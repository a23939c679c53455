/* SPDX-License-Identifier: MIT */
/*
 * The msgpack encodings: the result map of the public contract, and probe
 * items (one domain, its MX hosts and several jobs) passed from the
 * coordinator to the workers. Pure data in and out; no I/O. Decoders treat
 * their input as hostile: every field is type-checked and length-bounded.
 */
#ifndef MXPROBE_CODEC_H
#define MXPROBE_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_reply.h"
#include "status.h"
#include "verdict.h"

/* Bounds on client-supplied job fields. */
#define JOB_ID_MAX 256
#define JOB_EMAIL_MAX 1024
#define JOB_BATCH_MAX 256
#define JOB_REPLY_MAX 256
#define MX_HOSTS_MAX 16
#define MX_IPS_MAX 16
#define PROBE_JOBS_MAX 1000

/* One submitted address on its way through the fleet. Strings are owned. */
struct job {
    char *entry;        /* jobs stream entry id, the dedupe key of its result */
    char *id;           /* the caller's id, or the entry id */
    char *email;        /* as submitted (sanitised to valid UTF-8) */
    char *address;      /* normalized address; NULL when the syntax is bad */
    char *batch;        /* NULL when none */
    char *reply;        /* list to push the result to; NULL when none */
    int64_t first_probe_ms;  /* wall ms of the first SMTP attempt, 0 before */
    int attempts;       /* SMTP attempts made so far */
};

struct mx_host {
    char *name;         /* host name without the trailing dot */
    int pref;
    char **ips;         /* textual IPv4/IPv6 addresses, in resolver order */
    size_t n_ips;
};

/* The work for one SMTP session: one domain, several addresses. */
struct probe_item {
    char *domain;
    struct mx_host *mx;      /* by preference, best first */
    size_t n_mx;
    struct job *jobs;
    size_t n_jobs;
    char *catchall_local;    /* when set: RCPT <local@domain> first to
                                test the catch-all; NULL otherwise */
    enum tristate catch_all; /* the flag when already known */
    int attempt;             /* sessions already tried for this item */
    int64_t first_ms;        /* wall ms the item was first dispatched */
};

/* The deciding SMTP reply kept in a result. */
struct smtp_evidence {
    enum smtp_stage stage;
    int code;                          /* 0 when no reply (connect stage) */
    char enhanced[SMTP_ENHANCED_MAX];  /* "" when none */
    char text[SMTP_REPLY_TEXT_MAX];
};

/*
 * One final result. Encoding borrows every string; a decoded result owns
 * them (free with codec_result_fini()).
 */
struct result {
    char *id;
    char *email;
    char *address;          /* NULL encodes as nil */
    enum verdict_status status;
    enum verdict_reason reason;
    enum tristate catch_all;  /* TRI_UNKNOWN encodes as nil */
    bool has_smtp;
    struct smtp_evidence smtp;
    char *mx;               /* NULL encodes as nil */
    char *mx_ip;
    int attempts;
    int64_t checked_at;     /* unix ms */
    int64_t duration_ms;
    char *worker;           /* NULL encodes as nil */
};

/* Appends the result map to sb. */
enum status codec_encode_result(const struct result *res, msgpack_sbuffer *sb);
/* Decodes a result map; ST_EPROTO when it is not one. */
enum status codec_decode_result(const char *data, size_t len,
                                struct result *out);
void codec_result_fini(struct result *res);

/* Appends the probe item to sb. */
enum status codec_encode_probe(const struct probe_item *item,
                               msgpack_sbuffer *sb);
/* Decodes a probe item into owned memory; ST_EPROTO when malformed. */
enum status codec_decode_probe(const char *data, size_t len,
                               struct probe_item *out);
void codec_probe_fini(struct probe_item *item);

/* Frees a job's strings and zeroes it. */
void codec_job_fini(struct job *job);
/* Deep copy of a job. */
void codec_job_copy(struct job *dst, const struct job *src);

/*
 * Copies text into a new heap string, replacing bytes that are not valid
 * UTF-8 and control characters with '?', at most max bytes of input.
 */
char *codec_utf8_dup(const char *text, size_t len, size_t max);

#endif
