/* SPDX-License-Identifier: MIT */
/*
 * msgpack encoders and decoders for results and probe items. Strings are
 * packed as msgpack str (never bin) because Redis's Lua msgpack cannot read
 * bin. Decoders copy what they keep, because unpacked strings point into the
 * input buffer and are not NUL-terminated.
 */
#include "codec.h"

#include <string.h>

#include "utf8.h"
#include "xalloc.h"

/* ---- small packing helpers ---- */

static void
pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);

    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void
pack_str_or_nil(msgpack_packer *pk, const char *s)
{
    if (s == NULL)
        msgpack_pack_nil(pk);
    else
        pack_str(pk, s);
}

static void
pack_tristate(msgpack_packer *pk, enum tristate t)
{
    if (t == TRI_YES)
        msgpack_pack_true(pk);
    else if (t == TRI_NO)
        msgpack_pack_false(pk);
    else
        msgpack_pack_nil(pk);
}

static void
pack_smtp(msgpack_packer *pk, const struct smtp_evidence *e)
{
    msgpack_pack_map(pk, 4);
    pack_str(pk, "stage");
    pack_str(pk, smtp_stage_str(e->stage));
    pack_str(pk, "code");
    msgpack_pack_int(pk, e->code);
    pack_str(pk, "enhanced");
    pack_str_or_nil(pk, e->enhanced[0] != '\0' ? e->enhanced : NULL);
    pack_str(pk, "text");
    pack_str(pk, e->text);
}

enum status
codec_encode_result(const struct result *res, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 14);
    pack_str(&pk, "id");
    pack_str(&pk, res->id != NULL ? res->id : "");
    pack_str(&pk, "email");
    pack_str(&pk, res->email != NULL ? res->email : "");
    pack_str(&pk, "address");
    pack_str_or_nil(&pk, res->address);
    pack_str(&pk, "status");
    pack_str(&pk, verdict_status_str(res->status));
    pack_str(&pk, "reason");
    pack_str(&pk, verdict_reason_str(res->reason));
    pack_str(&pk, "catch_all");
    pack_tristate(&pk, res->catch_all);
    pack_str(&pk, "smtp");
    if (res->has_smtp)
        pack_smtp(&pk, &res->smtp);
    else
        msgpack_pack_nil(&pk);
    pack_str(&pk, "mx");
    pack_str_or_nil(&pk, res->mx);
    pack_str(&pk, "mx_ip");
    pack_str_or_nil(&pk, res->mx_ip);
    pack_str(&pk, "attempts");
    msgpack_pack_int(&pk, res->attempts);
    pack_str(&pk, "checked_at");
    msgpack_pack_int64(&pk, res->checked_at);
    pack_str(&pk, "duration_ms");
    msgpack_pack_int64(&pk, res->duration_ms);
    pack_str(&pk, "worker");
    pack_str_or_nil(&pk, res->worker);
    pack_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    return ST_OK;
}

static void
pack_job(msgpack_packer *pk, const struct job *job)
{
    msgpack_pack_map(pk, 8);
    pack_str(pk, "entry");
    pack_str(pk, job->entry != NULL ? job->entry : "");
    pack_str(pk, "id");
    pack_str(pk, job->id != NULL ? job->id : "");
    pack_str(pk, "email");
    pack_str(pk, job->email != NULL ? job->email : "");
    pack_str(pk, "address");
    pack_str_or_nil(pk, job->address);
    pack_str(pk, "batch");
    pack_str_or_nil(pk, job->batch);
    pack_str(pk, "reply");
    pack_str_or_nil(pk, job->reply);
    pack_str(pk, "first_probe_ms");
    msgpack_pack_int64(pk, job->first_probe_ms);
    pack_str(pk, "attempts");
    msgpack_pack_int(pk, job->attempts);
}

static void
pack_mx(msgpack_packer *pk, const struct mx_host *mx)
{
    msgpack_pack_map(pk, 3);
    pack_str(pk, "name");
    pack_str(pk, mx->name != NULL ? mx->name : "");
    pack_str(pk, "pref");
    msgpack_pack_int(pk, mx->pref);
    pack_str(pk, "ips");
    msgpack_pack_array(pk, mx->n_ips);
    for (size_t i = 0; i < mx->n_ips; i++)
        pack_str(pk, mx->ips[i]);
}

enum status
codec_encode_probe(const struct probe_item *item, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    if (item->n_mx > MX_HOSTS_MAX || item->n_jobs > PROBE_JOBS_MAX)
        return ST_EINVAL;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pack_str(&pk, "domain");
    pack_str(&pk, item->domain != NULL ? item->domain : "");
    pack_str(&pk, "mx");
    msgpack_pack_array(&pk, item->n_mx);
    for (size_t i = 0; i < item->n_mx; i++)
        pack_mx(&pk, &item->mx[i]);
    pack_str(&pk, "jobs");
    msgpack_pack_array(&pk, item->n_jobs);
    for (size_t i = 0; i < item->n_jobs; i++)
        pack_job(&pk, &item->jobs[i]);
    pack_str(&pk, "catchall_local");
    pack_str_or_nil(&pk, item->catchall_local);
    pack_str(&pk, "catch_all");
    pack_tristate(&pk, item->catch_all);
    pack_str(&pk, "attempt");
    msgpack_pack_int(&pk, item->attempt);
    pack_str(&pk, "first_ms");
    msgpack_pack_int64(&pk, item->first_ms);
    return ST_OK;
}

/* ---- decoding helpers ---- */

static bool
key_is(const msgpack_object *key, const char *name)
{
    size_t len = strlen(name);

    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len &&
           memcmp(key->via.str.ptr, name, len) == 0;
}

/* Copies a str object (or nil, when nil_ok) into *out; bounded by max. */
static enum status
take_str(const msgpack_object *o, bool nil_ok, size_t max, char **out)
{
    if (o->type == MSGPACK_OBJECT_NIL && nil_ok) {
        *out = NULL;
        return ST_OK;
    }
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return ST_EPROTO;
    free(*out);
    *out = codec_utf8_dup(o->via.str.ptr, o->via.str.size, max);
    return ST_OK;
}

static enum status
take_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;

    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return ST_EPROTO;
        v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else {
        return ST_EPROTO;
    }
    if (v < min || v > max)
        return ST_EPROTO;
    *out = v;
    return ST_OK;
}

static enum status
take_tristate(const msgpack_object *o, enum tristate *out)
{
    if (o->type == MSGPACK_OBJECT_NIL)
        *out = TRI_UNKNOWN;
    else if (o->type == MSGPACK_OBJECT_BOOLEAN)
        *out = o->via.boolean ? TRI_YES : TRI_NO;
    else
        return ST_EPROTO;
    return ST_OK;
}

static enum status
take_fixed(const msgpack_object *o, char *dst, size_t size)
{
    char *tmp = NULL;
    enum status st = take_str(o, true, size - 1, &tmp);

    if (st != ST_OK)
        return st;
    dst[0] = '\0';
    if (tmp != NULL) {
        memcpy(dst, tmp, strlen(tmp) + 1);
        free(tmp);
    }
    return ST_OK;
}

static enum status
decode_smtp(const msgpack_object *o, struct result *res)
{
    struct smtp_evidence *e = &res->smtp;
    enum status st = ST_OK;
    char name[16];
    int64_t code = 0;

    if (o->type == MSGPACK_OBJECT_NIL) {
        res->has_smtp = false;
        return ST_OK;
    }
    if (o->type != MSGPACK_OBJECT_MAP)
        return ST_EPROTO;
    res->has_smtp = true;
    for (uint32_t i = 0; i < o->via.map.size && st == ST_OK; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;

        if (key_is(k, "stage")) {
            st = take_fixed(v, name, sizeof name);
            if (st == ST_OK && !smtp_stage_parse(name, &e->stage))
                st = ST_EPROTO;
        } else if (key_is(k, "code")) {
            st = take_int(v, 0, 999, &code);
            e->code = (int)code;
        } else if (key_is(k, "enhanced")) {
            st = take_fixed(v, e->enhanced, sizeof e->enhanced);
        } else if (key_is(k, "text")) {
            st = take_fixed(v, e->text, sizeof e->text);
        }
    }
    return st;
}

static enum status
decode_result_field(const msgpack_object *k, const msgpack_object *v,
                    struct result *res)
{
    char name[32];
    int64_t n = 0;
    enum status st;

    if (key_is(k, "id"))
        return take_str(v, false, JOB_ID_MAX * 4, &res->id);
    if (key_is(k, "email"))
        return take_str(v, false, JOB_EMAIL_MAX * 4, &res->email);
    if (key_is(k, "address"))
        return take_str(v, true, JOB_EMAIL_MAX, &res->address);
    if (key_is(k, "mx"))
        return take_str(v, true, 255, &res->mx);
    if (key_is(k, "mx_ip"))
        return take_str(v, true, 64, &res->mx_ip);
    if (key_is(k, "worker"))
        return take_str(v, true, 300, &res->worker);
    if (key_is(k, "catch_all"))
        return take_tristate(v, &res->catch_all);
    if (key_is(k, "smtp"))
        return decode_smtp(v, res);
    if (key_is(k, "status") || key_is(k, "reason")) {
        st = take_fixed(v, name, sizeof name);
        if (st != ST_OK)
            return st;
        if (key_is(k, "status"))
            return verdict_status_parse(name, &res->status) ? ST_OK
                                                             : ST_EPROTO;
        return verdict_reason_parse(name, &res->reason) ? ST_OK : ST_EPROTO;
    }
    if (key_is(k, "attempts")) {
        st = take_int(v, 0, 1000000, &n);
        res->attempts = (int)n;
        return st;
    }
    if (key_is(k, "checked_at"))
        return take_int(v, 0, INT64_MAX, &res->checked_at);
    if (key_is(k, "duration_ms"))
        return take_int(v, 0, INT64_MAX, &res->duration_ms);
    return ST_OK; /* unknown keys are skipped, for newer writers */
}

/* Unpacks one whole msgpack object that must span the input exactly. */
static enum status
unpack_root(const char *data, size_t len, msgpack_unpacked *up)
{
    size_t off = 0;

    msgpack_unpacked_init(up);
    if (msgpack_unpack_next(up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || up->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(up);
        return ST_EPROTO;
    }
    return ST_OK;
}

enum status
codec_decode_result(const char *data, size_t len, struct result *out)
{
    msgpack_unpacked up;
    enum status st;
    const msgpack_object_map *map;

    memset(out, 0, sizeof *out);
    out->catch_all = TRI_UNKNOWN;
    st = unpack_root(data, len, &up);
    if (st != ST_OK)
        return st;
    map = &up.data.via.map;
    for (uint32_t i = 0; i < map->size && st == ST_OK; i++)
        st = decode_result_field(&map->ptr[i].key, &map->ptr[i].val, out);
    if (st == ST_OK && (out->id == NULL || out->email == NULL))
        st = ST_EPROTO;
    msgpack_unpacked_destroy(&up);
    if (st != ST_OK)
        codec_result_fini(out);
    return st;
}

void
codec_result_fini(struct result *res)
{
    free(res->id);
    free(res->email);
    free(res->address);
    free(res->mx);
    free(res->mx_ip);
    free(res->worker);
    memset(res, 0, sizeof *res);
    res->catch_all = TRI_UNKNOWN;
}

static enum status
decode_job_field(const msgpack_object *k, const msgpack_object *v,
                 struct job *job)
{
    int64_t n = 0;
    enum status st;

    if (key_is(k, "entry"))
        return take_str(v, false, 64, &job->entry);
    if (key_is(k, "id"))
        return take_str(v, false, JOB_ID_MAX, &job->id);
    if (key_is(k, "email"))
        return take_str(v, false, JOB_EMAIL_MAX, &job->email);
    if (key_is(k, "address"))
        return take_str(v, true, JOB_EMAIL_MAX, &job->address);
    if (key_is(k, "batch"))
        return take_str(v, true, JOB_BATCH_MAX, &job->batch);
    if (key_is(k, "reply"))
        return take_str(v, true, JOB_REPLY_MAX, &job->reply);
    if (key_is(k, "first_probe_ms"))
        return take_int(v, 0, INT64_MAX, &job->first_probe_ms);
    if (key_is(k, "attempts")) {
        st = take_int(v, 0, 1000000, &n);
        job->attempts = (int)n;
        return st;
    }
    return ST_OK;
}

static enum status
decode_job(const msgpack_object *o, struct job *job)
{
    enum status st = ST_OK;

    if (o->type != MSGPACK_OBJECT_MAP)
        return ST_EPROTO;
    for (uint32_t i = 0; i < o->via.map.size && st == ST_OK; i++)
        st = decode_job_field(&o->via.map.ptr[i].key, &o->via.map.ptr[i].val,
                              job);
    if (st == ST_OK && (job->entry == NULL || job->id == NULL ||
                        job->email == NULL))
        st = ST_EPROTO;
    return st;
}

static enum status
decode_mx(const msgpack_object *o, struct mx_host *mx)
{
    enum status st = ST_OK;
    int64_t pref = 0;

    if (o->type != MSGPACK_OBJECT_MAP)
        return ST_EPROTO;
    for (uint32_t i = 0; i < o->via.map.size && st == ST_OK; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;

        if (key_is(k, "name")) {
            st = take_str(v, false, 255, &mx->name);
        } else if (key_is(k, "pref")) {
            st = take_int(v, 0, 65535, &pref);
            mx->pref = (int)pref;
        } else if (key_is(k, "ips")) {
            if (v->type != MSGPACK_OBJECT_ARRAY ||
                v->via.array.size > MX_IPS_MAX || mx->ips != NULL)
                return ST_EPROTO;
            mx->ips = xcalloc(v->via.array.size, sizeof *mx->ips);
            for (uint32_t j = 0; j < v->via.array.size && st == ST_OK; j++) {
                st = take_str(&v->via.array.ptr[j], false, 64, &mx->ips[j]);
                if (st == ST_OK)
                    mx->n_ips++;
            }
        }
    }
    if (st == ST_OK && mx->name == NULL)
        st = ST_EPROTO;
    return st;
}

static enum status
decode_probe_array(const msgpack_object *v, struct probe_item *item,
                   bool is_mx)
{
    size_t max = is_mx ? MX_HOSTS_MAX : PROBE_JOBS_MAX;
    enum status st = ST_OK;

    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > max)
        return ST_EPROTO;
    if (is_mx) {
        if (item->mx != NULL)
            return ST_EPROTO;
        item->mx = xcalloc(v->via.array.size, sizeof *item->mx);
        for (uint32_t i = 0; i < v->via.array.size && st == ST_OK; i++) {
            item->n_mx++;
            st = decode_mx(&v->via.array.ptr[i], &item->mx[i]);
        }
        return st;
    }
    if (item->jobs != NULL)
        return ST_EPROTO;
    item->jobs = xcalloc(v->via.array.size, sizeof *item->jobs);
    for (uint32_t i = 0; i < v->via.array.size && st == ST_OK; i++) {
        item->n_jobs++;
        st = decode_job(&v->via.array.ptr[i], &item->jobs[i]);
    }
    return st;
}

static enum status
decode_probe_field(const msgpack_object *k, const msgpack_object *v,
                   struct probe_item *item)
{
    int64_t n = 0;
    enum status st;

    if (key_is(k, "domain"))
        return take_str(v, false, 255, &item->domain);
    if (key_is(k, "mx"))
        return decode_probe_array(v, item, true);
    if (key_is(k, "jobs"))
        return decode_probe_array(v, item, false);
    if (key_is(k, "catchall_local"))
        return take_str(v, true, 64, &item->catchall_local);
    if (key_is(k, "catch_all"))
        return take_tristate(v, &item->catch_all);
    if (key_is(k, "attempt")) {
        st = take_int(v, 0, 1000000, &n);
        item->attempt = (int)n;
        return st;
    }
    if (key_is(k, "first_ms"))
        return take_int(v, 0, INT64_MAX, &item->first_ms);
    return ST_OK;
}

enum status
codec_decode_probe(const char *data, size_t len, struct probe_item *out)
{
    msgpack_unpacked up;
    const msgpack_object_map *map;
    enum status st;

    memset(out, 0, sizeof *out);
    out->catch_all = TRI_UNKNOWN;
    st = unpack_root(data, len, &up);
    if (st != ST_OK)
        return st;
    map = &up.data.via.map;
    for (uint32_t i = 0; i < map->size && st == ST_OK; i++)
        st = decode_probe_field(&map->ptr[i].key, &map->ptr[i].val, out);
    if (st == ST_OK && (out->domain == NULL || out->n_jobs == 0))
        st = ST_EPROTO;
    msgpack_unpacked_destroy(&up);
    if (st != ST_OK)
        codec_probe_fini(out);
    return st;
}

void
codec_job_fini(struct job *job)
{
    free(job->entry);
    free(job->id);
    free(job->email);
    free(job->address);
    free(job->batch);
    free(job->reply);
    memset(job, 0, sizeof *job);
}

void
codec_job_copy(struct job *dst, const struct job *src)
{
    dst->entry = xstrdup(src->entry);
    dst->id = xstrdup(src->id);
    dst->email = xstrdup(src->email);
    dst->address = xstrdup(src->address);
    dst->batch = xstrdup(src->batch);
    dst->reply = xstrdup(src->reply);
    dst->first_probe_ms = src->first_probe_ms;
    dst->attempts = src->attempts;
}

void
codec_probe_fini(struct probe_item *item)
{
    for (size_t i = 0; i < item->n_mx; i++) {
        for (size_t j = 0; j < item->mx[i].n_ips; j++)
            free(item->mx[i].ips[j]);
        free(item->mx[i].ips);
        free(item->mx[i].name);
    }
    free(item->mx);
    for (size_t i = 0; i < item->n_jobs; i++)
        codec_job_fini(&item->jobs[i]);
    free(item->jobs);
    free(item->domain);
    free(item->catchall_local);
    memset(item, 0, sizeof *item);
    item->catch_all = TRI_UNKNOWN;
}

char *
codec_utf8_dup(const char *text, size_t len, size_t max)
{
    const unsigned char *s = (const unsigned char *)text;
    char *out;
    size_t o = 0;
    size_t i = 0;

    if (len > max)
        len = max;
    out = xmalloc(len + 1);
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);

        if (n == 0 || utf8_is_control(cp)) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}
