/* Incremental parser for Server-Sent Events (the text/event-stream format that
 * OpenAI-compatible providers use for `stream: true`).
 *
 * Bytes are fed as they arrive from the network, in pieces of any size: a line,
 * a field or even a CRLF pair may be split across two reads. Each complete event
 * (terminated by a blank line) is handed to the callback with its `event` name
 * (empty if none) and its `data` (several data lines joined with '\n').
 * Comment lines (starting with ':'), `id` and `retry` fields are skipped, and one
 * leading UTF-8 byte order mark is ignored, as the SSE specification says. */
#ifndef EL_CLOUD_SSE_H
#define EL_CLOUD_SSE_H

#include <stddef.h>

#include "core/error.h"

/* Return 0 to continue, non-zero to stop parsing (el_sse_feed then returns -1
 * and leaves err untouched, so the callback can fill it). */
typedef int (*el_sse_event_fn)(void *ud, const char *event, const char *data, size_t data_len);

typedef struct el_sse {
    char *line;           /* the current, incomplete line */
    size_t line_len, line_cap;
    char *data;           /* data lines of the current event, joined by '\n' */
    size_t data_len, data_cap;
    int has_data;         /* at least one data field was seen */
    char event[64];       /* the current event's `event` field */
    int skip_lf;          /* the previous byte was CR: a following LF ends nothing */
    int bom_matched;      /* bytes of a leading UTF-8 BOM seen so far; -1 once past it */
    size_t max_event;     /* cap on line and event sizes (bytes) */
    size_t n_events;      /* events dispatched so far */
    el_sse_event_fn fn;
    void *ud;
} el_sse;

/* max_event: refuse lines or events larger than this (0 means 8 MiB). */
void el_sse_init(el_sse *p, size_t max_event, el_sse_event_fn fn, void *ud);
void el_sse_free(el_sse *p);

/* Feeds n bytes. Returns 0, or -1 if an event is too large, memory runs out
 * (err filled) or the callback asked to stop (err left to the callback). */
int el_sse_feed(el_sse *p, const char *bytes, size_t n, el_err *err);

/* True if bytes of an unfinished event or line are pending (the stream was cut). */
int el_sse_pending(const el_sse *p);

#endif
