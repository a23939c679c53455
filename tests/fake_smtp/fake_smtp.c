/* SPDX-License-Identifier: MIT */
/*
 * fake-smtp: a scripted SMTP server for the misbehaviour that a real MTA
 * will not produce on demand (greylisting on cue, 421 mid-session, garbage
 * or oversized replies, drops, tarpits). It listens on one IPv4 or IPv6
 * address, forks one process per connection, takes its replies from a
 * scenario file and writes a transcript that tests grep. It links only
 * libc and OpenSSL.
 *
 * Usage:
 *   fake-smtp -a ADDR -p PORT -s FILE.scn [-l TRANSCRIPT] [-P PIDFILE]
 *             [-c CERT.pem -k KEY.pem]
 *   fake-smtp -n -s FILE.scn      (check the scenario and exit)
 *
 * Scenario language, one rule or setting per line; '#' starts a comment
 * line; the first rule that matches a command answers it:
 *
 *   STAGE [OPTION ...] [PATTERN] [OPTION ...] [--] REPLY
 *   STAGE [OPTION ...] [PATTERN] [OPTION ...] drop
 *   set timeout DURATION          idle timeout per connection (default 30s)
 *
 * STAGE is "greeting" (on connect), "dataend" (after the "." that ends a
 * message), "any" (every command, never the greeting or dataend), or a
 * command verb in any case: ehlo, helo, mail, rcpt, data, rset, noop, quit,
 * vrfy, starttls or any other word a client may send.
 *
 * PATTERN (mail and rcpt only, required) is a glob matched with fnmatch()
 * against the lower-cased address between < and >; "<>" matches only the
 * null reverse-path, "*" matches every address.
 *
 * OPTIONS:
 *   delay=DURATION   wait before answering (tarpit, slow greeting)
 *   greylist=DURATION  answer "450 4.7.1 <addr>: ... Greylisted" until the
 *                    same command and address come again at least DURATION
 *                    after their first sight, on any connection; then REPLY
 *   limit=N          the rule answers at most N times per connection, then
 *                    later rules get the command (e.g. drop after N RCPTs)
 *   conn=N           the rule applies only on the N-th accepted connection
 *   tls=yes|no       the rule applies only with / without TLS active
 *   lines=N          send REPLY as N lines: "CODE-TEXT" ... "CODE TEXT"
 *   pad=N            pad each reply line with 'x' to N octets before CRLF
 *   close            close the connection after the reply
 *   drop             close the connection without any reply
 * DURATION is milliseconds, or seconds with an "s" suffix (250, 250ms, 3s).
 * "--" ends the options when REPLY itself starts like an option.
 *
 * REPLY is sent as written, followed by CRLF, so it may be garbage that is
 * not SMTP at all. Escapes: \n line break (CRLF), \r bare CR, \t, \\, and
 * \xHH for any octet. Raw UTF-8 in the file is sent unchanged.
 *
 * Built-in behaviour: rules from the file come first, then defaults (220
 * greeting, EHLO with PIPELINING, MAIL 250, RCPT 550 5.1.1, DATA 354 and
 * then 250, RSET/NOOP 250, QUIT 221, everything else 500 5.5.2). A 421
 * reply and the QUIT reply always close the connection. A 2xx answer to
 * STARTTLS starts TLS when -c and -k were given, and becomes 454 4.7.0
 * otherwise. Command lines over 4095 octets are answered 500 5.5.0.
 *
 * Example:
 *   ehlo tls=no 250-mx.test\n250-PIPELINING\n250 STARTTLS
 *   mail tls=no * 530 5.7.0 Must issue a STARTTLS command first
 *   rcpt *@catchall.test 250 2.1.5 Ok
 *   rcpt known@x.test greylist=2s 250 2.1.5 Ok
 *   rcpt * limit=3 550 5.1.1 No such user
 *   rcpt * drop
 *
 * Transcript lines ("t=SECONDS conn=N ev=..."): ev=start, ev=accept
 * peer=IP:PORT, ev=recv verb=VERB line="...", ev=send rule_line=N
 * octets=N text="first line", ev=drop, ev=tls status=ok|failed,
 * ev=data octets=N, ev=close reason=WHY.
 */
#define _DEFAULT_SOURCE /* NI_MAXHOST and NI_MAXSERV are not in POSIX */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "greylist.h"
#include "scenario.h"
#include "session.h"
#include "transcript.h"

/* Bound on concurrent connection processes; more wait in the backlog. */
#define FAKE_MAX_CHILDREN 512
#define FAKE_BACKLOG 256

struct options {
    const char *addr;
    const char *port;
    const char *scenario;
    const char *transcript;
    const char *pidfile;
    const char *cert;
    const char *key;
    int check_only;
};

struct server {
    struct scenario scn;
    struct session_env env;
    int listen_fd;
    pid_t children[FAKE_MAX_CHILDREN];
    size_t nchildren;
    long next_conn;
};

static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: fake-smtp -a ADDR -p PORT -s FILE.scn [-l TRANSCRIPT]\n"
            "                 [-P PIDFILE] [-c CERT.pem -k KEY.pem]\n"
            "       fake-smtp -n -s FILE.scn\n"
            "  -a ADDR   IPv4 or IPv6 address to listen on\n"
            "  -p PORT   TCP port\n"
            "  -s FILE   scenario file (rule language: see fake_smtp.c)\n"
            "  -l FILE   transcript log, appended (default: stdout)\n"
            "  -P FILE   write the listener's process id here\n"
            "  -c, -k    certificate and key in PEM for STARTTLS\n"
            "  -n        check the scenario, print the rule count, exit\n");
}

static int
parse_options(int argc, char **argv, struct options *o)
{
    int c;

    memset(o, 0, sizeof *o);
    while ((c = getopt(argc, argv, "a:p:s:l:P:c:k:nh")) != -1) {
        switch (c) {
        case 'a':
            o->addr = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 's':
            o->scenario = optarg;
            break;
        case 'l':
            o->transcript = optarg;
            break;
        case 'P':
            o->pidfile = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'n':
            o->check_only = 1;
            break;
        default:
            return -1;
        }
    }
    if (optind != argc || o->scenario == NULL)
        return -1;
    if (!o->check_only && (o->addr == NULL || o->port == NULL))
        return -1;
    if ((o->cert == NULL) != (o->key == NULL))
        return -1;
    return 0;
}

static SSL_CTX *
tls_context(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int
listen_on(const char *addr, const char *port)
{
    struct addrinfo hints;
    struct addrinfo *ai;
    int one = 1;
    int fd;
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "fake-smtp: invalid address %s port %s: %s\n", addr,
                port, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, FAKE_BACKLOG) != 0)
        goto fail;
    freeaddrinfo(ai);
    return fd;

fail:
    fprintf(stderr, "fake-smtp: failed to listen on %s port %s: %s\n", addr,
            port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

static void
reap_children(struct server *srv)
{
    pid_t pid;
    size_t i;

    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
        for (i = 0; i < srv->nchildren; i++) {
            if (srv->children[i] == pid) {
                srv->children[i] = srv->children[--srv->nchildren];
                break;
            }
        }
    }
}

static void
run_child(struct server *srv, int fd)
{
    struct sigaction sa;

    close(srv->listen_fd);
#ifdef __linux__
    /* A killed listener takes its connection processes with it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    session_run(&srv->env, fd, srv->next_conn);
    _exit(0);
}

static void
accept_one(struct server *srv)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    pid_t pid;
    int fd;

    fd = accept(srv->listen_fd, (struct sockaddr *)&peer, &plen);
    if (fd < 0)
        return;
    srv->next_conn++;
    if (getnameinfo((struct sockaddr *)&peer, plen, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        memcpy(host, "?", 2);
        memcpy(serv, "?", 2);
    }
    transcript_log(srv->env.log_fd, srv->next_conn, "ev=accept peer=%s:%s",
                   host, serv);
    pid = fork();
    if (pid == 0)
        run_child(srv, fd);
    if (pid < 0)
        transcript_log(srv->env.log_fd, srv->next_conn,
                       "ev=close reason=fork-failed errno=%d", errno);
    else
        srv->children[srv->nchildren++] = pid;
    close(fd);
}

static void
serve(struct server *srv)
{
    struct pollfd pfd;
    size_t i;

    pfd.fd = srv->listen_fd;
    pfd.events = POLLIN;
    while (!stop_requested) {
        reap_children(srv);
        if (srv->nchildren >= FAKE_MAX_CHILDREN) {
            poll(NULL, 0, 50);
            continue;
        }
        if (poll(&pfd, 1, 500) > 0)
            accept_one(srv);
    }
    for (i = 0; i < srv->nchildren; i++)
        kill(srv->children[i], SIGTERM);
}

static int
install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

static int
write_pidfile(const char *path)
{
    FILE *fp = fopen(path, "w");

    if (fp == NULL)
        return -1;
    fprintf(fp, "%ld\n", (long)getpid());
    return fclose(fp);
}

static int
setup_server(struct server *srv, const struct options *o)
{
    srv->env.scn = &srv->scn;
    srv->env.log_fd = STDOUT_FILENO;
    if (o->transcript != NULL) {
        srv->env.log_fd = open(o->transcript,
                               O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (srv->env.log_fd < 0) {
            fprintf(stderr, "fake-smtp: failed to open transcript %s: %s\n",
                    o->transcript, strerror(errno));
            return -1;
        }
    }
    if (o->cert != NULL) {
        srv->env.tls = tls_context(o->cert, o->key);
        if (srv->env.tls == NULL) {
            fprintf(stderr, "fake-smtp: failed to load TLS certificate %s "
                    "and key %s\n", o->cert, o->key);
            return -1;
        }
    }
    srv->env.grey = greylist_new();
    if (srv->env.grey == NULL) {
        fprintf(stderr, "fake-smtp: failed to map the greylist table: %s\n",
                strerror(errno));
        return -1;
    }
    if (install_signals() != 0)
        return -1;
    srv->listen_fd = listen_on(o->addr, o->port);
    if (srv->listen_fd < 0)
        return -1;
    if (o->pidfile != NULL && write_pidfile(o->pidfile) != 0) {
        fprintf(stderr, "fake-smtp: failed to write pid file %s: %s\n",
                o->pidfile, strerror(errno));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static struct server srv;
    struct options o;
    char err[1024];

    if (parse_options(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (scenario_load(&srv.scn, o.scenario, err, sizeof err) != 0) {
        fprintf(stderr, "fake-smtp: invalid scenario: %s\n", err);
        return 2;
    }
    if (o.check_only) {
        printf("%s: %zu rules including the defaults\n", o.scenario,
               srv.scn.nrules);
        scenario_free(&srv.scn);
        return 0;
    }
    if (setup_server(&srv, &o) != 0)
        return 1;

    fprintf(stderr, "fake-smtp: listening on %s port %s, scenario %s\n",
            o.addr, o.port, o.scenario);
    transcript_log(srv.env.log_fd, 0, "ev=start addr=%s port=%s rules=%zu",
                   o.addr, o.port, srv.scn.nrules);
    serve(&srv);
    transcript_log(srv.env.log_fd, 0, "ev=stop");

    close(srv.listen_fd);
    SSL_CTX_free(srv.env.tls);
    scenario_free(&srv.scn);
    return 0;
}
