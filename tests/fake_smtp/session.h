/* SPDX-License-Identifier: MIT */
/*
 * One SMTP connection of fake-smtp, run to its end in its own process:
 * greeting, command lines, replies chosen by the scenario, STARTTLS and a
 * DATA phase that only counts octets. It does not track SMTP command order
 * (RCPT before MAIL is answered like any RCPT), because scenarios exist to
 * misbehave on request, not to enforce RFC 5321.
 */
#ifndef FAKE_SMTP_SESSION_H
#define FAKE_SMTP_SESSION_H

#include <openssl/ssl.h>

#include "greylist.h"
#include "scenario.h"

/* Everything a connection process shares with the listener; borrowed. */
struct session_env {
    const struct scenario *scn;
    struct greylist *grey;
    SSL_CTX *tls;        /* NULL: a 2xx to STARTTLS becomes 454 */
    int log_fd;
};

/*
 * Serves the client on fd until it quits, a rule closes or drops the
 * connection, the idle timeout passes or an I/O error happens. Closes fd.
 */
void session_run(const struct session_env *env, int fd, long conn);

#endif
