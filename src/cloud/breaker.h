/* A per-provider circuit breaker. After `threshold` consecutive failed attempts
 * it opens: calls are refused at once (so a dead provider costs nothing) until
 * `cooldown_ms` have passed. Then it is half-open: exactly one probe call is let
 * through; success closes it, failure opens it for another cooldown.
 * Times are passed in (monotonic ms) so that tests control the clock. */
#ifndef EL_CLOUD_BREAKER_H
#define EL_CLOUD_BREAKER_H

#include <pthread.h>

typedef enum el_breaker_state { EL_BREAKER_CLOSED, EL_BREAKER_OPEN, EL_BREAKER_HALF_OPEN } el_breaker_state;

typedef struct el_breaker {
    pthread_mutex_t mu;
    int threshold;      /* <= 0: never opens */
    double cooldown_ms;
    int failures;       /* consecutive */
    el_breaker_state state;
    double open_until;
    int probe_in_flight;
} el_breaker;

void el_breaker_init(el_breaker *b, int threshold, double cooldown_ms);
void el_breaker_destroy(el_breaker *b);

/* 1: the call may go ahead (in half-open state, as the one probe);
 * 0: refused, *retry_in_ms (if non-NULL) says when the next probe is allowed. */
int el_breaker_allow(el_breaker *b, double now_ms, double *retry_in_ms);
/* Records the outcome of an allowed call. */
void el_breaker_record(el_breaker *b, int ok, double now_ms);
el_breaker_state el_breaker_get_state(el_breaker *b, double now_ms);

#endif
