/* SPDX-License-Identifier: MIT */
/*
 * The logger. Its settings are the only file-scope mutable state in the
 * project: they are written once by log_setup() before the event loop runs
 * and only read afterwards, which is what lets every module log without
 * threading a logger through each call.
 */
#include "log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"

#define LOG_LINE_MAX 4096
#define LOG_VALUE_MAX 200

struct log_settings {
    const char *component;
    const char *worker_id;
    enum log_level level;
};

static struct log_settings log_settings = {"mxprobe", NULL, LOG_LVL_INFO};

static const char *const level_names[] = {
    [LOG_LVL_CRIT] = "crit",
    [LOG_LVL_ERROR] = "error",
    [LOG_LVL_WARN] = "warn",
    [LOG_LVL_INFO] = "info",
    [LOG_LVL_DEBUG] = "debug",
};

_Static_assert(sizeof level_names / sizeof level_names[0] == LOG_LVL_NLEVELS,
               "level_names must name every level");

void
log_setup(const char *component, const char *worker_id, enum log_level level)
{
    log_settings.component = component;
    log_settings.worker_id = worker_id;
    log_settings.level = level;
}

bool
log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i < LOG_LVL_NLEVELS; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool
log_enabled(enum log_level level)
{
    return level <= log_settings.level;
}

static bool
needs_quotes(const char *text)
{
    if (*text == '\0')
        return true;
    return strpbrk(text, " \"=\\") != NULL;
}

const char *
log_quote(char *out, size_t size, const char *text)
{
    size_t o = 0;
    size_t limit = size - 1;
    bool quote;

    assert(size >= 3);
    if (text == NULL)
        text = "-";
    quote = needs_quotes(text);
    if (quote)
        out[o++] = '"';
    for (size_t i = 0; text[i] != '\0' && i < LOG_VALUE_MAX; i++) {
        unsigned char c = (unsigned char)text[i];

        if (o + 3 >= limit)
            break;
        if (c < 0x20 || c == 0x7f)
            c = '?';
        if (quote && (c == '"' || c == '\\'))
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    if (quote)
        out[o++] = '"';
    out[o] = '\0';
    return out;
}

static size_t
append_timestamp(char *line, size_t size)
{
    int64_t now = clock_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    size_t n;

    gmtime_r(&secs, &tm);
    n = strftime(line, size, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, size - n, ".%03dZ", (int)(now % 1000));
    return n;
}

static void
append_id(char *line, size_t size, size_t *len, const char *key,
          const char *value)
{
    char quoted[LOG_QUOTE_MAX];
    int n;

    if (value == NULL || *len >= size)
        return;
    n = snprintf(line + *len, size - *len, " %s=%s", key,
                 log_quote(quoted, sizeof quoted, value));
    if (n > 0)
        *len += (size_t)n;
}

void
log_write(enum log_level level, const struct log_ctx *ctx, const char *fmt,
          ...)
{
    char line[LOG_LINE_MAX];
    size_t len;
    va_list ap;
    int n;

    assert(strchr(fmt, '\n') == NULL);
    if (!log_enabled(level))
        return;

    len = append_timestamp(line, sizeof line);
    n = snprintf(line + len, sizeof line - len, " lvl=%s comp=%s",
                 level_names[level], log_settings.component);
    len += n > 0 ? (size_t)n : 0;
    append_id(line, sizeof line, &len, "worker", log_settings.worker_id);
    if (ctx != NULL) {
        append_id(line, sizeof line, &len, "job", ctx->job);
        append_id(line, sizeof line, &len, "domain", ctx->domain);
        append_id(line, sizeof line, &len, "mx", ctx->mx);
        append_id(line, sizeof line, &len, "ip", ctx->ip);
    }
    if (len < sizeof line - 1) {
        line[len++] = ' ';
        va_start(ap, fmt);
        n = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        len = n < 0 ? len : len + (size_t)n;
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
