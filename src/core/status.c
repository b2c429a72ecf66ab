/*
 * status.c - status codes and per-thread error messages.
 *
 * The message of the last failure lives in thread-local storage (like errno),
 * so concurrent calls on different threads never see each other's messages.
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NF_MSG_MAX 1024

static _Thread_local char nf_msg[NF_MSG_MAX];

const char *nf_status_str(nf_status s) {
    switch (s) {
    case NF_OK: return "ok";
    case NF_ERR_ARG: return "invalid argument";
    case NF_ERR_SHAPE: return "shape mismatch";
    case NF_ERR_DOMAIN: return "domain error";
    case NF_ERR_NUMERIC: return "numerical failure";
    case NF_ERR_NOMEM: return "out of memory";
    case NF_ERR_UNSUPPORTED: return "unsupported operation";
    case NF_ERR_IO: return "input/output error";
    }
    return "unknown status";
}

const char *nf_last_error(void) { return nf_msg; }

#define NF_STR2(x) #x
#define NF_STR(x) NF_STR2(x)
const char *nf_version(void) { return NF_STR(NF_VERSION_MAJOR) "." NF_STR(NF_VERSION_MINOR) "." NF_STR(NF_VERSION_PATCH); }

nf_status nf__err(nf_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nf_msg, sizeof nf_msg, fmt, ap);
    va_end(ap);
    return s;
}

nf_status nf__err_prefix(nf_status s, const char *fn) {
    char tmp[NF_MSG_MAX];
    size_t fl = strlen(fn);
    /* Do not prefix twice (a public call made by another public call). */
    if (strncmp(nf_msg, fn, fl) == 0 && nf_msg[fl] == ':') return s;
    const char *rest = nf_msg[0] ? nf_msg : nf_status_str(s);
    size_t rl = strlen(rest);
    if (fl > NF_MSG_MAX / 2) fl = NF_MSG_MAX / 2;
    if (fl + 2 + rl >= NF_MSG_MAX) rl = NF_MSG_MAX - fl - 3;
    memcpy(tmp, fn, fl);
    tmp[fl] = ':', tmp[fl + 1] = ' ';
    memcpy(tmp + fl + 2, rest, rl);
    tmp[fl + 2 + rl] = 0;
    memcpy(nf_msg, tmp, fl + 3 + rl);
    return s;
}

size_t nf__first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

nf_status nf__check_finite(const char *what, const float *x, size_t n, size_t d) {
    size_t k = nf__first_nonfinite(x, n * d);
    if (k == n * d) return NF_OK;
    return nf__err(NF_ERR_DOMAIN, "%s has a non-finite value (%g) at row %zu, column %zu", what,
                   (double)x[k], k / d, k % d);
}
