/* SPDX-License-Identifier: MIT */
/*
 * Fuzz driver for address_parse(). An accepted address must respect the
 * length limits, carry no control character, and parse again to itself.
 */
#include <string.h>

#include "address.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct address a;
    struct address again;
    size_t len;

    if (address_parse((const char *)data, size, &a) != ADDRESS_OK)
        return 0;

    len = strlen(a.normalized);
    fuzz_require(len <= ADDRESS_MAX, "address bounded");
    fuzz_require(strlen(a.local) <= ADDRESS_LOCAL_MAX, "local part bounded");
    fuzz_require(strlen(a.domain) <= ADDRESS_DOMAIN_MAX, "domain bounded");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)a.normalized[i];

        fuzz_require(c >= 0x20 && c != 0x7F, "no control character");
    }
    for (const char *d = a.domain; *d != '\0'; d++) {
        fuzz_require((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') ||
                         *d == '-' || *d == '.',
                     "domain is lowercase LDH");
    }

    fuzz_require(address_parse(a.normalized, len, &again) == ADDRESS_OK,
                 "normalized form parses");
    fuzz_require(strcmp(a.normalized, again.normalized) == 0,
                 "normalization is idempotent");
    fuzz_require(a.utf8_local == again.utf8_local, "same UTF-8 flag");
    return 0;
}
