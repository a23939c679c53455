/* SPDX-License-Identifier: MIT */
/*
 * A real redis-server for unit tests: started on a free loopback port and a
 * unix socket in a temporary folder, stopped and restarted on
 * the same port, and queried through a blocking hiredis connection for the
 * checks. A missing redis-server is a test failure, never a skip.
 */
#ifndef MXPROBE_TEST_REDIS_FIXTURE_H
#define MXPROBE_TEST_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct redis_fixture {
    pid_t pid;
    int port;
    char dir[64];          /* temporary folder, removed by _fini */
    char sock[128];        /* unix socket path inside dir */
    char password[64];     /* "" for none */
};

static inline void
redis_fixture_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/* Asks the kernel for a free loopback port; the server binds it next. */
static inline int
redis_fixture_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* A blocking connection to the fixture, or NULL. */
static inline redisContext *
redis_fixture_connect(const struct redis_fixture *f)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
    redisReply *r;

    if (c == NULL || c->err != 0) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (f->password[0] != '\0') {
        r = redisCommand(c, "AUTH %s", f->password);
        if (r != NULL)
            freeReplyObject(r);
    }
    return c;
}

static inline bool
redis_fixture_wait_up(const struct redis_fixture *f)
{
    int i;

    for (i = 0; i < 200; i++) {
        redisContext *c = redis_fixture_connect(f);
        redisReply *r = c ? redisCommand(c, "PING") : NULL;
        bool up = r != NULL && r->type == REDIS_REPLY_STATUS;

        if (r != NULL)
            freeReplyObject(r);
        if (c != NULL)
            redisFree(c);
        if (up)
            return true;
        redis_fixture_sleep_ms(25);
    }
    return false;
}

/* Starts redis-server with the fixture's port and folder. */
static inline bool
redis_fixture_start(struct redis_fixture *f)
{
    char port[16];
    char logfile[128];
    const char *argv[24];
    int n = 0;

    snprintf(port, sizeof port, "%d", f->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", f->dir);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = f->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = logfile;
    argv[n++] = "--unixsocket";
    argv[n++] = f->sock;
    if (f->password[0] != '\0') {
        argv[n++] = "--requirepass";
        argv[n++] = f->password;
    }
    argv[n] = NULL;

    f->pid = fork();
    if (f->pid < 0)
        return false;
    if (f->pid == 0) {
        execvp("redis-server", (char *const *)(void *)argv);
        fprintf(stderr, "redis_fixture: cannot run redis-server: %s\n",
                strerror(errno));
        _exit(127);
    }
    if (!redis_fixture_wait_up(f)) {
        fprintf(stderr, "redis_fixture: redis-server did not come up on "
                "port %d (see %s)\n", f->port, logfile);
        return false;
    }
    return true;
}

/* Creates the folder, picks a port and starts the server. */
static inline bool
redis_fixture_init(struct redis_fixture *f, const char *password)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mxprobe-redis-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return false;
    snprintf(f->sock, sizeof f->sock, "%s/redis.sock", f->dir);
    snprintf(f->password, sizeof f->password, "%s", password ? password : "");
    f->port = redis_fixture_free_port();
    if (f->port <= 0)
        return false;
    return redis_fixture_start(f);
}

/* Stops the server with sig (SIGKILL for a crash) and reaps it. */
static inline void
redis_fixture_stop(struct redis_fixture *f, int sig)
{
    int status;

    if (f->pid <= 0)
        return;
    kill(f->pid, sig);
    while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
        continue;
    f->pid = 0;
}

/* Stops the server and removes its folder. */
static inline void
redis_fixture_fini(struct redis_fixture *f)
{
    char path[160];

    redis_fixture_stop(f, SIGTERM);
    snprintf(path, sizeof path, "%s/redis.log", f->dir);
    unlink(path);
    unlink(f->sock);
    snprintf(path, sizeof path, "%s/dump.rdb", f->dir);
    unlink(path);
    rmdir(f->dir);
}

/*
 * Runs a blocking command on a fresh connection and returns the reply (free
 * it with freeReplyObject), or NULL when the server did not answer.
 */
static inline redisReply *
redis_fixture_cmd(const struct redis_fixture *f, int argc, const char **argv,
                  const size_t *argvlen)
{
    redisContext *c = redis_fixture_connect(f);
    redisReply *r;

    if (c == NULL)
        return NULL;
    r = redisCommandArgv(c, argc, argv, argvlen);
    redisFree(c);
    return r;
}

/* The integer reply of a command, or -1 on any other reply. */
static inline long long
redis_fixture_int(const struct redis_fixture *f, int argc, const char **argv)
{
    redisReply *r = redis_fixture_cmd(f, argc, argv, NULL);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    if (r != NULL)
        freeReplyObject(r);
    return v;
}

#endif
