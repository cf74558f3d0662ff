#include "cloud/breaker.h"

void el_breaker_init(el_breaker *b, int threshold, double cooldown_ms) {
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold;
    b->cooldown_ms = cooldown_ms;
    b->failures = 0;
    b->state = EL_BREAKER_CLOSED;
    b->open_until = 0;
    b->probe_in_flight = 0;
}

void el_breaker_destroy(el_breaker *b) { pthread_mutex_destroy(&b->mu); }

/* Caller holds mu. An open breaker whose cooldown is over becomes half-open. */
static void breaker_refresh(el_breaker *b, double now_ms) {
    if (b->state == EL_BREAKER_OPEN && now_ms >= b->open_until) {
        b->state = EL_BREAKER_HALF_OPEN;
        b->probe_in_flight = 0;
    }
}

int el_breaker_allow(el_breaker *b, double now_ms, double *retry_in_ms) {
    pthread_mutex_lock(&b->mu);
    breaker_refresh(b, now_ms);
    int ok = 1;
    if (b->state == EL_BREAKER_OPEN) {
        ok = 0;
        if (retry_in_ms) *retry_in_ms = b->open_until - now_ms;
    } else if (b->state == EL_BREAKER_HALF_OPEN) {
        if (b->probe_in_flight) {
            ok = 0;
            if (retry_in_ms) *retry_in_ms = 0;
        } else {
            b->probe_in_flight = 1;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void el_breaker_record(el_breaker *b, int ok, double now_ms) {
    pthread_mutex_lock(&b->mu);
    if (ok) {
        b->failures = 0;
        b->state = EL_BREAKER_CLOSED;
        b->probe_in_flight = 0;
    } else {
        b->failures++;
        if (b->state == EL_BREAKER_HALF_OPEN || (b->threshold > 0 && b->failures >= b->threshold)) {
            b->state = EL_BREAKER_OPEN;
            b->open_until = now_ms + b->cooldown_ms;
            b->probe_in_flight = 0;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

el_breaker_state el_breaker_get_state(el_breaker *b, double now_ms) {
    pthread_mutex_lock(&b->mu);
    breaker_refresh(b, now_ms);
    el_breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}
