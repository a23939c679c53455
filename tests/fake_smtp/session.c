/* SPDX-License-Identifier: MIT */
/*
 * The per-connection loop of fake-smtp. Blocking I/O is enough because each
 * connection has its own process; SO_RCVTIMEO and SO_SNDTIMEO bound every
 * read and write, so a silent or non-reading client cannot keep a process
 * alive past the scenario's idle timeout.
 */
#include "session.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "transcript.h"

/*
 * RFC 5321 4.5.3.1.4 allows 512 octets per command line; the buffer is
 * larger so that a longer line is still seen and answered 500, not cut.
 */
#define SESSION_IN_MAX 4096
#define SESSION_ADDR_MAX 256
#define SESSION_QUOTE_MAX 600

enum session_read {
    SESSION_READ_LINE,
    SESSION_READ_TOO_LONG,
    SESSION_READ_EOF,
    SESSION_READ_TIMEOUT,
    SESSION_READ_ERROR
};

struct session {
    const struct session_env *env;
    int fd;
    long conn;
    SSL *ssl;
    char in[SESSION_IN_MAX];
    size_t in_len;
    bool overlong;          /* discarding the rest of a too-long line */
    unsigned uses[SCN_MAX_RULES];
    const char *close_reason; /* set when the session must end */
};

static void
session_set_timeouts(int fd, long ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void
session_sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Returns bytes read, 0 at end of stream, -1 on error (errno set). */
static ssize_t
session_recv(struct session *s, char *buf, size_t len)
{
    ssize_t n;
    int rc;

    if (s->ssl == NULL) {
        do {
            n = read(s->fd, buf, len);
        } while (n < 0 && errno == EINTR);
        return n;
    }
    rc = SSL_read(s->ssl, buf, len > 65536 ? 65536 : (int)len);
    if (rc > 0)
        return rc;
    if (SSL_get_error(s->ssl, rc) == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        errno = EPROTO;
    return -1;
}

static int
session_send(struct session *s, const char *buf, size_t len)
{
    size_t off = 0;
    ssize_t n;

    while (off < len) {
        if (s->ssl != NULL) {
            size_t chunk = len - off > 65536 ? 65536 : len - off;

            n = SSL_write(s->ssl, buf + off, (int)chunk);
            if (n <= 0)
                return -1;
        } else {
            n = write(s->fd, buf + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Moves one line (CRLF or bare LF removed) from s->in into line. */
static bool
session_take_line(struct session *s, char *line, size_t *len)
{
    char *lf = memchr(s->in, '\n', s->in_len);
    size_t n;
    size_t used;

    if (lf == NULL)
        return false;
    used = (size_t)(lf - s->in) + 1;
    n = used - 1;
    if (n > 0 && s->in[n - 1] == '\r')
        n--;
    memcpy(line, s->in, n);
    line[n] = '\0';
    *len = n;
    memmove(s->in, s->in + used, s->in_len - used);
    s->in_len -= used;
    return true;
}

/* Reads one line into line (SESSION_IN_MAX bytes). */
static enum session_read
session_read_line(struct session *s, char *line, size_t *len)
{
    ssize_t n;

    for (;;) {
        if (session_take_line(s, line, len)) {
            if (!s->overlong)
                return SESSION_READ_LINE;
            s->overlong = false;
            return SESSION_READ_TOO_LONG;
        }
        if (s->in_len == sizeof s->in) {
            s->overlong = true;
            s->in_len = 0;
        }
        n = session_recv(s, s->in + s->in_len, sizeof s->in - s->in_len);
        if (n == 0)
            return SESSION_READ_EOF;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SESSION_READ_TIMEOUT;
        if (n < 0)
            return SESSION_READ_ERROR;
        s->in_len += (size_t)n;
    }
}

/* Logs a reply: its first line quoted, and its size. */
static void
session_log_send(struct session *s, const char *reply, size_t len,
                 int source_line)
{
    char quoted[SESSION_QUOTE_MAX];
    const char *crlf = memchr(reply, '\n', len);
    size_t first = crlf != NULL ? (size_t)(crlf - reply) : len;

    if (first > 0 && reply[first - 1] == '\r')
        first--;
    transcript_quote(quoted, sizeof quoted, reply, first);
    transcript_log(s->env->log_fd, s->conn,
                   "ev=send rule_line=%d octets=%zu text=\"%s\"",
                   source_line, len, quoted);
}

static int
session_send_text(struct session *s, const char *text, int source_line)
{
    size_t len = strlen(text);

    session_log_send(s, text, len, source_line);
    if (session_send(s, text, len) != 0) {
        s->close_reason = "write-failed";
        return -1;
    }
    return 0;
}

/* Returns the reply code of a rendered reply, or 0 if it has none. */
static int
reply_code(const char *reply, size_t len)
{
    if (len < 3 || !isdigit((unsigned char)reply[0]) ||
        !isdigit((unsigned char)reply[1]) ||
        !isdigit((unsigned char)reply[2]))
        return 0;
    return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

/* Answers 450 when a greylist= rule still holds the key back. */
static bool
session_greylisted(struct session *s, const struct scn_rule *rule,
                   const struct scn_command *cmd, const char *arg)
{
    char key[SESSION_ADDR_MAX + SCN_VERB_MAX + 2];
    char text[SESSION_ADDR_MAX + 128];
    const char *subject = cmd->address != NULL ? cmd->address : arg;
    int n;

    if (rule->greylist_ms == 0)
        return false;
    n = snprintf(key, sizeof key, "%s %s", cmd->verb, subject);
    if (n < 0)
        return false;
    if (!greylist_check(s->env->grey, key, rule->greylist_ms))
        return false;
    /* RFC 3463: 4.7.1 is "delivery not authorized", the usual greylist. */
    n = snprintf(text, sizeof text,
                 "450 4.7.1 <%s>: Recipient address rejected: "
                 "Greylisted, try again later\r\n", subject);
    if (n < 0 || (size_t)n >= sizeof text)
        return false;
    session_send_text(s, text, rule->source_line);
    return true;
}

/*
 * Chooses the rule for cmd, waits its delay, and sends its reply or drops
 * the connection. Returns the reply code sent, 0 for none.
 */
static int
session_reply(struct session *s, const struct scn_command *cmd,
              const char *arg)
{
    const struct scenario *scn = s->env->scn;
    size_t idx = scenario_match(scn, cmd, s->uses);
    const struct scn_rule *rule = &scn->rules[idx];
    char *reply;
    size_t len;
    int code;

    s->uses[idx]++;
    if (rule->delay_ms > 0)
        session_sleep_ms(rule->delay_ms);
    if (rule->drop) {
        transcript_log(s->env->log_fd, s->conn, "ev=drop rule_line=%d",
                       rule->source_line);
        s->close_reason = "drop";
        return 0;
    }
    if (session_greylisted(s, rule, cmd, arg))
        return 450;

    if (strcmp(cmd->verb, "STARTTLS") == 0 && s->env->tls == NULL &&
        rule->reply_len > 0 && rule->reply[0] == '2') {
        session_send_text(s, "454 4.7.0 TLS not available\r\n",
                          rule->source_line);
        return 454;
    }

    reply = scenario_render(rule, &len);
    if (reply == NULL) {
        s->close_reason = "out-of-memory";
        return 0;
    }
    session_log_send(s, reply, len, rule->source_line);
    code = reply_code(reply, len);
    if (session_send(s, reply, len) != 0)
        s->close_reason = "write-failed";
    free(reply);

    /* RFC 5321 3.8: a server that sends 421 closes the connection. */
    if (s->close_reason == NULL &&
        (rule->close || code == 421 || strcmp(cmd->verb, "QUIT") == 0))
        s->close_reason = code == 421 ? "421" : "rule-close";
    return code;
}

/* Finds the address inside <...> after "FROM:" or "TO:", lower-cased. */
static void
extract_address(const char *arg, char *addr, size_t cap)
{
    const char *colon = strchr(arg, ':');
    const char *start;
    const char *end;
    size_t n;
    size_t i;

    addr[0] = '\0';
    if (colon == NULL)
        return;
    start = colon + 1;
    while (*start == ' ')
        start++;
    if (*start == '<') {
        start++;
        end = strchr(start, '>');
        if (end == NULL)
            end = start + strlen(start);
    } else {
        end = start + strcspn(start, " ");
    }
    n = (size_t)(end - start);
    if (n >= cap)
        n = cap - 1;
    for (i = 0; i < n; i++)
        addr[i] = (char)tolower((unsigned char)start[i]);
    addr[n] = '\0';
}

/* RFC 3207 4.2: input pipelined before the handshake must be discarded. */
static void
session_start_tls(struct session *s)
{
    int rc;

    s->in_len = 0;
    s->overlong = false;
    s->ssl = SSL_new(s->env->tls);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        s->close_reason = "tls-setup-failed";
        return;
    }
    rc = SSL_accept(s->ssl);
    if (rc != 1) {
        transcript_log(s->env->log_fd, s->conn,
                       "ev=tls status=failed ssl_error=%d",
                       SSL_get_error(s->ssl, rc));
        s->close_reason = "tls-handshake-failed";
        return;
    }
    transcript_log(s->env->log_fd, s->conn,
                   "ev=tls status=ok version=%s cipher=%s",
                   SSL_get_version(s->ssl),
                   SSL_CIPHER_get_name(SSL_get_current_cipher(s->ssl)));
}

/* Counts message octets until the lone "." of RFC 5321 4.1.1.4. */
static void
session_read_data(struct session *s)
{
    char line[SESSION_IN_MAX];
    size_t len = 0;
    size_t octets = 0;
    enum session_read r;
    struct scn_command cmd = { "DATAEND", NULL, s->conn, s->ssl != NULL };

    for (;;) {
        r = session_read_line(s, line, &len);
        if (r == SESSION_READ_LINE && len == 1 && line[0] == '.')
            break;
        if (r != SESSION_READ_LINE && r != SESSION_READ_TOO_LONG) {
            s->close_reason = "eof-in-data";
            return;
        }
        octets += len + 2;
    }
    transcript_log(s->env->log_fd, s->conn, "ev=data octets=%zu", octets);
    session_reply(s, &cmd, "");
}

/* Counts the complete lines waiting in the input buffer. */
static size_t
session_queued_lines(const struct session *s)
{
    size_t n = 0;

    for (size_t i = 0; i < s->in_len; i++) {
        if (s->in[i] == '\n')
            n++;
    }
    return n;
}

static void
session_command(struct session *s, const char *line, size_t len)
{
    char verb[SCN_VERB_MAX];
    char addr[SESSION_ADDR_MAX];
    char quoted[SESSION_QUOTE_MAX];
    struct scn_command cmd = { verb, NULL, s->conn, s->ssl != NULL };
    size_t vlen = strcspn(line, " ");
    const char *arg = line + vlen;
    size_t i;
    int code;

    if (vlen >= sizeof verb)
        vlen = 0;
    for (i = 0; i < vlen; i++)
        verb[i] = (char)toupper((unsigned char)line[i]);
    verb[vlen] = '\0';
    while (*arg == ' ')
        arg++;

    transcript_quote(quoted, sizeof quoted, line, len);
    /* queued: complete lines the client sent before this one was
     * answered, which shows RFC 2920 pipelining in the transcript. */
    transcript_log(s->env->log_fd, s->conn,
                   "ev=recv verb=%s line=\"%s\" queued=%zu",
                   vlen > 0 ? verb : "-", quoted, session_queued_lines(s));

    if (strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0) {
        extract_address(arg, addr, sizeof addr);
        cmd.address = addr;
    }
    code = session_reply(s, &cmd, arg);
    if (s->close_reason != NULL)
        return;
    if (strcmp(verb, "STARTTLS") == 0 && code >= 200 && code < 300 &&
        s->ssl == NULL)
        session_start_tls(s);
    else if (strcmp(verb, "DATA") == 0 && code == 354)
        session_read_data(s);
}

static void
session_loop(struct session *s)
{
    char line[SESSION_IN_MAX];
    size_t len = 0;

    while (s->close_reason == NULL) {
        switch (session_read_line(s, line, &len)) {
        case SESSION_READ_LINE:
            session_command(s, line, len);
            break;
        case SESSION_READ_TOO_LONG:
            transcript_log(s->env->log_fd, s->conn, "ev=recv verb=- "
                           "line_too_long=1");
            session_send_text(s, "500 5.5.0 Line too long\r\n", 0);
            break;
        case SESSION_READ_EOF:
            s->close_reason = "client-eof";
            break;
        case SESSION_READ_TIMEOUT:
            s->close_reason = "timeout";
            break;
        case SESSION_READ_ERROR:
            s->close_reason = "read-failed";
            break;
        }
    }
}

void
session_run(const struct session_env *env, int fd, long conn)
{
    struct session *s = calloc(1, sizeof *s);
    struct scn_command greeting = { "GREETING", NULL, conn, false };

    if (s == NULL) {
        close(fd);
        return;
    }
    s->env = env;
    s->fd = fd;
    s->conn = conn;
    session_set_timeouts(fd, env->scn->timeout_ms);

    session_reply(s, &greeting, "");
    session_loop(s);

    transcript_log(env->log_fd, conn, "ev=close reason=%s", s->close_reason);
    if (s->ssl != NULL) {
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
    }
    close(fd);
    free(s);
}
