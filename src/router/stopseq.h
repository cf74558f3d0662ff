/* Stop sequences for a local engine that streams text token by token: text is
 * passed on as soon as it can no longer be the start of a stop sequence, and
 * nothing from the first stop sequence on is ever passed on. A token may end in
 * the middle of a stop sequence or of a UTF-8 character; both are held back. */
#ifndef EL_ROUTER_STOPSEQ_H
#define EL_ROUTER_STOPSEQ_H

#include <stddef.h>

#include "core/error.h"

typedef int (*el_emit_fn)(void *ud, const char *text, size_t len); /* non-zero: stop */

typedef struct el_stopseq {
    const char *const *stop;
    size_t n_stop;
    size_t max_len;   /* longest stop sequence */
    char *buf;        /* text not passed on yet */
    size_t len, cap;
} el_stopseq;

void el_stopseq_init(el_stopseq *s, const char *const *stop, size_t n_stop);
void el_stopseq_free(el_stopseq *s);

/* Returns 0 to go on, 1 when a stop sequence was found (the text before it has
 * been emitted), -1 if emit asked to stop or memory ran out (err set). */
int el_stopseq_feed(el_stopseq *s, const char *text, size_t n, el_emit_fn emit, void *ud, el_err *err);
/* At the end of generation: emits what was held back. -1 if emit asked to stop. */
int el_stopseq_flush(el_stopseq *s, el_emit_fn emit, void *ud, el_err *err);

#endif
