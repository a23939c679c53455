/* SPDX-License-Identifier: MIT */
/*
 * Status codes for infrastructure calls (sockets, Redis, DNS, parsing).
 * SMTP outcomes such as a 550 on RCPT are not statuses: they are verdicts
 * (see verdict.h) and travel as data.
 */
#ifndef MXPROBE_STATUS_H
#define MXPROBE_STATUS_H

enum status {
    ST_OK = 0,
    ST_AGAIN,     /* not yet: more input needed; never logged as an error */
    ST_EIO,       /* a system call failed; errno tells why */
    ST_EPROTO,    /* the peer broke its protocol or a bound was exceeded */
    ST_ETIMEDOUT, /* a deadline passed */
    ST_ECLOSED,   /* the peer closed the connection */
    ST_EDNS,      /* a DNS lookup failed */
    ST_EREDIS,    /* a Redis command or connection failed */
    ST_EINVAL,    /* an argument or input value is invalid */
    ST_ECONFIG,   /* a configuration value is invalid */
    ST_NSTATUSES
};

/* Returns a short constant name for st, such as "eproto". */
const char *status_str(enum status st);

#endif
