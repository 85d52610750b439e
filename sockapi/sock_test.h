/*
 * sock_test.h: drive a Sock app's callbacks in-process, without a
 * network (like Plug.Test). Create a fake connection for an app, run the
 * upgrade hook on a request head, call init, feed messages and infos,
 * advance a fake clock for sock_send_after, and read back what the app
 * pushed, how it stopped and whether terminate ran.
 *
 * The harness keeps the contract's rules: callbacks never nest (infos sent
 * during a callback wait for sock_test_run), pushes after terminate fail
 * with -EPIPE, a handler returning garbage is stopped with 1011, and
 * terminate runs exactly once for every connection whose init ran.
 * Not thread-safe, but for what sock.h makes thread-safe (sock_post and
 * the deferred upgrade decisions may come from the app's threads, as on
 * the server); one harness per process at a time.
 */
#ifndef SOCK_TEST_H
#define SOCK_TEST_H

#include "sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sock_test sock_test;

/*
 * A fake connection of app on route (e.g. "/echo"), not yet upgraded.
 * Ids are given out as on worker 0 of generation 1, node 1.
 */
sock_test *sock_test_new(const sock_app *app, const char *route);
/* Runs terminate if init ran and terminate did not, then frees. */
void sock_test_free(sock_test *t);

/*
 * Runs the app's upgrade hook on a raw request head ("GET /x HTTP/1.1\r\n
 * Host: h\r\n...\r\n\r\n"; the WebSocket headers are added if missing).
 * Returns 0 if accepted, or the HTTP status of the refusal (the request
 * itself may be refused with 400/426 before the hook, as the server would).
 */
int sock_test_upgrade(sock_test *t, const char *head);
/* The subprotocol the hook chose, or NULL. */
const char *sock_test_chosen_subprotocol(const sock_test *t);

/* Calls init (with the upgrade arg, if the hook set one). */
sock_ret sock_test_init(sock_test *t);
/* A message from the client: text/binary → handle_in, ping/pong →
   handle_control (a ping's automatic pong is recorded as pushed). */
sock_ret sock_test_in(sock_test *t, sock_opcode op, const void *data,
                      size_t len);
/* An info, as if delivered by the server. */
sock_ret sock_test_info(sock_test *t, sock_info_kind kind, uint32_t type,
                        sock_id from, const void *data, size_t len);
/* The client closes with code (1005: empty close); runs terminate. */
void sock_test_peer_close(sock_test *t, uint16_t code);

/* Delivers every queued info of every test connection, oldest first,
   including infos queued while delivering. Returns how many ran. */
int sock_test_run(void);
/* Moves the fake clock by ms, fires due sock_send_after timers, and runs
   the queued infos. Returns how many infos ran. */
int sock_test_advance(uint32_t ms);

/* Frames pushed and not yet taken (a publish to a sock_subscribe_frames
   subscriber pushes its frame at once, during the publish). */
size_t sock_test_pushed(const sock_test *t);
/*
 * Takes the oldest pushed frame. data stays valid until the next take or
 * sock_test_free. Returns false when none is left.
 */
bool sock_test_take(sock_test *t, sock_opcode *op, const void **data,
                    size_t *len);

bool sock_test_stopped(const sock_test *t);  /* the app stopped, or was */
uint16_t sock_test_close_code(const sock_test *t); /* code to be sent */
const char *sock_test_close_reason(const sock_test *t);
bool sock_test_terminated(const sock_test *t);
int sock_test_terminate_count(const sock_test *t);
/* What terminate was given (valid once terminated). */
const sock_close_info *sock_test_close_info(const sock_test *t);
/* The state pointer the app last stored. */
void *sock_test_state(const sock_test *t);
/* The connection as the app sees it (for sock_self and the like). */
sock_conn *sock_test_conn(sock_test *t);
/* True while reading is active (sock_set_active). */
bool sock_test_active(const sock_test *t);

/* ---- App setup and route options ----------------------------------------
 * Runs app->setup (ABI 2) as a worker would for route, with options given
 * as name, value, name, value, ..., NULL (NULL: none). Returns setup's
 * result (0 without setup). The options stay until sock_test_teardown;
 * connections made afterwards with sock_test_new(app, route) see them
 * through sock_option and sock_request_option.
 */
int sock_test_setup(const sock_app *app, const char *route,
                    const char *const *options);
/* Runs app->teardown if setup succeeded, and forgets the options. */
void sock_test_teardown(const sock_app *app, const char *route);

/* ---- Loop integration ----------------------------------------------------
 * sock_watch_fd watches are real: sock_test_poll polls their fds with
 * poll(2) for up to timeout_ms, runs the callbacks of the ready ones, then
 * the queued infos (sock_test_run). Returns how many watch callbacks ran.
 * sock_test_fd_ready calls the watch on fd as if revents were ready (for
 * fake fds); returns 1 if a watch wanted any of them, else 0.
 * sock_timer_start timers run on the fake clock of sock_test_advance.
 */
int sock_test_poll(int timeout_ms);
int sock_test_fd_ready(int fd, unsigned revents);
/* Watches currently registered (stopped ones excluded). */
size_t sock_test_watch_count(void);
/* App timers (sock_timer_start) currently running. */
size_t sock_test_timer_count(void);

/*
 * sock_post works from any thread with the harness too: posts wait until
 * sock_test_run, which delivers them as SOCK_INFO_POST (from 0) to the
 * test connection with that id, or drops and counts them (closed or
 * unknown id). sock_test_wait runs sock_test_run until at least n infos
 * ran or timeout_ms (real time) passed; returns how many ran.
 */
int sock_test_wait(int n, int timeout_ms);
/* Posts dropped so far because their id was closed or unknown. */
uint64_t sock_test_posts_dropped(void);

/* ---- Deferred upgrades ---------------------------------------------------
 * When the hook deferred, sock_test_upgrade returns SOCK_UPGRADE_LATER.
 * The app's decision (from any thread) is applied by sock_test_run, as
 * the worker applies it on its loop. sock_test_upgrade_result: -1 while
 * undecided, 0 accepted (then call sock_test_init: init gets the
 * decision's arg), or the refusal status (body: sock_test_refuse_body).
 * sock_test_upgrade_expire plays the handshake timeout: the result becomes
 * 503 and the app's decision, made later, gets -EPIPE (also after
 * sock_test_free: the client went away).
 */
int sock_test_upgrade_result(const sock_test *t);
const char *sock_test_refuse_body(const sock_test *t);
/* The header lines the hook (sock_upgrade_header) and a later accept
   (sock_pending_header) added to the 101: "Name: value\r\n"..., or "". */
const char *sock_test_response_headers(const sock_test *t);
void sock_test_upgrade_expire(sock_test *t);

#ifdef __cplusplus
}
#endif

#endif
