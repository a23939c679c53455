/* SPDX-License-Identifier: MIT */
/*
 * A strict UTF-8 decoder for the parsers that handle untrusted text (the
 * address syntax check and the SMTP reply parser). It only reads: it never
 * allocates, converts or normalizes.
 */
#ifndef MXPROBE_UTF8_H
#define MXPROBE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the character at s, of which len >= 1 bytes are readable. Returns
 * its length in bytes (1 to 4) and stores the code point in *cp. Returns 0
 * when the bytes are not well-formed UTF-8 as RFC 3629 defines it, such as
 * an overlong form, a surrogate, a value above U+10FFFF or a cut sequence.
 */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Returns whether cp is a C0 or C1 control character or DEL. */
bool utf8_is_control(uint32_t cp);

#endif
