/* SPDX-License-Identifier: MIT */
/*
 * One hiredis asynchronous connection on a libev loop that stays up: it
 * connects with a deadline, runs AUTH and SELECT, reconnects with backoff
 * after any loss, and drops a connection whose oldest outstanding command
 * has waited too long (hiredis 0.14 has no timeouts of its own). Blocking
 * reads (XREADGROUP BLOCK) belong on a connection of their own, because they
 * hold up every command queued behind them.
 */
#ifndef MXPROBE_REDIS_CONN_H
#define MXPROBE_REDIS_CONN_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "status.h"

struct redis_conn;

/* Fires after every successful (re)connect, once AUTH and SELECT passed. */
typedef void redis_conn_ready_fn(struct redis_conn *rc, void *arg);

/*
 * Fires exactly once per accepted command: with the reply, or with NULL when
 * the connection was lost or timed out before the reply came. The reply is
 * valid only during the call (hiredis frees it afterwards).
 */
typedef void redis_reply_fn(struct redis_conn *rc, redisReply *reply,
                            void *arg);

/*
 * Creates the connection and starts connecting on loop. name appears in log
 * lines. command_timeout is in seconds and must exceed any BLOCK time used
 * on this connection. ready may be NULL. Never fails (connection errors are
 * retried in the background and logged).
 */
struct redis_conn *redis_conn_new(struct ev_loop *loop,
                                  const struct redis_addr *addr,
                                  const char *name, double command_timeout,
                                  redis_conn_ready_fn *ready, void *arg);

/*
 * Disconnects; outstanding callbacks fire with NULL first (inside this call,
 * or right after the running callback returns). NULL is allowed, and so is a
 * call from inside any callback of this connection: the memory goes once
 * hiredis has let go of the context.
 */
void redis_conn_free(struct redis_conn *rc);

/* Whether commands can be sent now. */
bool redis_conn_is_ready(const struct redis_conn *rc);

/* Commands waiting for their reply. */
size_t redis_conn_pending(const struct redis_conn *rc);

/*
 * Sends a command given as binary-safe arguments. Returns ST_OK, and then cb
 * (which may be NULL) fires exactly once, later, from the loop; or
 * ST_EREDIS when not connected, and then cb never fires.
 */
enum status redis_conn_command(struct redis_conn *rc, redis_reply_fn *cb,
                               void *arg, int argc, const char **argv,
                               const size_t *argvlen);

/* The same with a hiredis format string (%s, %b, %d ...). */
enum status redis_conn_commandf(struct redis_conn *rc, redis_reply_fn *cb,
                                void *arg, const char *fmt, ...);

/*
 * SUBSCRIBE, MONITOR and their kin get more than one reply per command, so
 * redis_conn_command() rejects them with ST_EINVAL. redis_conn_subscribe()
 * subscribes to one channel instead: cb fires for the subscribe confirmation
 * and for every message, then exactly once with NULL when the connection is
 * lost or freed, and never again. Subscribe again from the ready callback.
 * Once subscribed, the connection takes no other commands (the server
 * refuses them), so use a connection of its own. Subscribing twice to one
 * channel on one connection is not supported. Returns ST_OK, or ST_EREDIS
 * when not connected (then cb never fires).
 */
enum status redis_conn_subscribe(struct redis_conn *rc, redis_reply_fn *cb,
                                 void *arg, const char *channel);

/*
 * A growable argument vector for redis_conn_command(), for commands such as
 * EVAL and XADD whose argument count depends on the data. Copies every
 * argument, so the sources may go away after the append.
 */
struct redis_args {
    char **argv;
    size_t *argvlen;
    int argc;
    int cap;
};

void redis_args_init(struct redis_args *a);
void redis_args_add(struct redis_args *a, const char *data, size_t len);
void redis_args_add_str(struct redis_args *a, const char *s);
void redis_args_add_int(struct redis_args *a, long long value);
void redis_args_fini(struct redis_args *a);
enum status redis_conn_command_args(struct redis_conn *rc, redis_reply_fn *cb,
                                    void *arg, const struct redis_args *a);

#endif
