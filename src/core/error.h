/* Errors: every fallible library call takes an el_err* and returns -1 (or NULL)
 * after filling it with a code and a message that names the problem and where.
 * Library code never exits or aborts on bad input. */
#ifndef EL_CORE_ERROR_H
#define EL_CORE_ERROR_H

#include "edgellm.h"

typedef edgellm_error el_err;

/* Fill err (if non-NULL) with code and a printf-style message; returns -1 so
 * callers can write `return el_fail(err, EDGELLM_EFORMAT, "...", ...);`. */
int el_fail(el_err *err, edgellm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "context: old message". Returns -1. */
int el_fail_prefix(el_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
