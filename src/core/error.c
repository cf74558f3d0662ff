#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int el_fail(el_err *err, edgellm_status code, const char *fmt, ...) {
    if (!err) return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int el_fail_prefix(el_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->message];
    memcpy(old, err->message, sizeof old);
    /* Truncation is fine: the message stays NUL-terminated. */
    size_t n = strlen(prefix);
    if (n > sizeof err->message - 3) n = sizeof err->message - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t room = sizeof err->message - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
    return -1;
}

const char *edgellm_status_name(edgellm_status s) {
    switch (s) {
    case EDGELLM_OK: return "ok";
    case EDGELLM_EINVAL: return "invalid argument";
    case EDGELLM_EIO: return "I/O error";
    case EDGELLM_EFORMAT: return "bad file format";
    case EDGELLM_ENOMEM: return "out of memory";
    case EDGELLM_EUNSUPPORTED: return "unsupported";
    case EDGELLM_ENOTFOUND: return "not found";
    case EDGELLM_ERANGE: return "out of range";
    case EDGELLM_EBUSY: return "busy";
    case EDGELLM_ETIMEOUT: return "timeout";
    case EDGELLM_ENETWORK: return "network error";
    case EDGELLM_EAUTH: return "authentication error";
    case EDGELLM_ERATELIMIT: return "rate limited";
    case EDGELLM_ESERVER: return "server error";
    case EDGELLM_EPROTOCOL: return "malformed response";
    case EDGELLM_EBUDGET: return "budget exhausted";
    case EDGELLM_ECANCELLED: return "cancelled";
    }
    return "unknown error";
}
