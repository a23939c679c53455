/* SPDX-License-Identifier: MIT */
/*
 * Rendering of results for people and scripts: CSV rows (RFC 4180 quoting,
 * LF line ends) and JSON objects, one per line. Only formatting lives here;
 * no Redis and no decoding. Text that is not valid UTF-8 is written with
 * U+FFFD in place of each bad byte, so every line written is valid UTF-8.
 */
#ifndef MXPROBE_CLIENT_OUTPUT_H
#define MXPROBE_CLIENT_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "codec.h"

enum output_format {
    OUTPUT_CSV,     /* header row, then one row per result */
    OUTPUT_JSONL    /* one JSON object per line, the full result map */
};

/*
 * Parses "csv", "json" or "jsonl" (the last two are the same format).
 * Returns false for any other name.
 */
bool output_format_parse(const char *name, enum output_format *out);

/* The CSV header row, with its line end. */
#define OUTPUT_CSV_HEADER                                                 \
    "email,status,reason,address,catch_all,mx,smtp_code,smtp_enhanced,"   \
    "smtp_text,id\n"

/* Writes OUTPUT_CSV_HEADER to out. */
void output_csv_header(FILE *out);

/*
 * Writes one CSV row for res. Absent values (nil address, unknown catch-all,
 * no SMTP reply) are empty fields; catch_all is "true" or "false".
 */
void output_csv_row(FILE *out, const struct result *res);

/*
 * Writes res as one JSON object and a newline. The keys are those of the
 * result map: id, email, address, status, reason, catch_all, smtp (stage,
 * code, enhanced, text), mx, mx_ip, attempts, checked_at, duration_ms and
 * worker. Absent values are null.
 */
void output_json_line(FILE *out, const struct result *res);

/*
 * Writes one result in format: a JSON line, or a CSV row (the caller writes
 * the header once before the first row).
 */
void output_result(FILE *out, enum output_format format,
                   const struct result *res);

/*
 * Writes s as one CSV field, quoted when it contains a comma, a double
 * quote, CR or LF, or starts or ends with a space (quotes inside are
 * doubled). NULL writes an empty field.
 */
void output_csv_field(FILE *out, const char *s);

/*
 * Writes s as a JSON string with its quotes: '"' and '\\' are escaped,
 * control characters become \n, \t and the like or \u00XX, and other
 * characters pass as UTF-8. NULL writes null.
 */
void output_json_string(FILE *out, const char *s);

#endif
