/* SPDX-License-Identifier: MIT */
/*
 * One log line per event on standard error: a UTC timestamp, the level, the
 * component, every id the context carries (worker, job, domain, mx, ip), then
 * the caller's key=value pairs. Remote and client-supplied text goes through
 * log_quote() first, so no peer can forge or split a line.
 */
#ifndef MXPROBE_LOG_H
#define MXPROBE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
    LOG_LVL_CRIT,  /* about to abort */
    LOG_LVL_ERROR, /* work lost or an operator needed */
    LOG_LVL_WARN,  /* remote or infrastructure failure handled by a retry */
    LOG_LVL_INFO,  /* one line per finished job, and lifecycle */
    LOG_LVL_DEBUG, /* state changes, wire traces */
    LOG_LVL_NLEVELS
};

/* Ids attached to every line written with this context. Borrowed strings. */
struct log_ctx {
    const char *job;
    const char *domain;
    const char *mx;
    const char *ip;
};

/*
 * Sets the component name ("worker", "coordinator"), the process's worker id
 * (may be NULL) and the lowest level written. Call once at start-up, before
 * any other thread or callback logs; the strings must outlive the process's
 * logging.
 */
void log_setup(const char *component, const char *worker_id,
               enum log_level level);

/* Parses "crit", "error", "warn", "info" or "debug". */
bool log_level_parse(const char *name, enum log_level *out);

bool log_enabled(enum log_level level);

/* Writes one line; ctx may be NULL. fmt must not contain a newline. */
void log_write(enum log_level level, const struct log_ctx *ctx,
               const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Copies text into out (size bytes) so that it is safe as a log value: control
 * characters become '?', at most 200 bytes are kept, and the value is quoted
 * when it contains spaces, quotes or '='. Returns out.
 */
const char *log_quote(char *out, size_t size, const char *text);

/* Buffer size that always holds a log_quote() result. */
#define LOG_QUOTE_MAX 420

#define log_crit(ctx, ...) log_write(LOG_LVL_CRIT, (ctx), __VA_ARGS__)
#define log_error(ctx, ...) log_write(LOG_LVL_ERROR, (ctx), __VA_ARGS__)
#define log_warn(ctx, ...) log_write(LOG_LVL_WARN, (ctx), __VA_ARGS__)
#define log_info(ctx, ...) log_write(LOG_LVL_INFO, (ctx), __VA_ARGS__)
#define log_debug(ctx, ...) log_write(LOG_LVL_DEBUG, (ctx), __VA_ARGS__)

#endif
