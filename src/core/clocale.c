/*
 * clocale.c - numbers are parsed and printed in the C locale whatever locale
 * the host program chose: a call that reads or writes numbers as text (the
 * spec language, CSV tables, model-file headers, checkpoints) switches the
 * calling thread, and only it, to the C locale with uselocale() for its
 * duration (POSIX 2008; per thread, so other threads are not affected).
 */
#include "core.h"

#include <locale.h>

void nf__clocale_enter(nf_clocale *l) {
    l->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    l->old = l->c ? uselocale((locale_t)l->c) : (locale_t)0;
}

void nf__clocale_leave(nf_clocale *l) {
    if (!l->c) return;
    uselocale((locale_t)l->old);
    freelocale((locale_t)l->c);
    l->c = NULL;
}
