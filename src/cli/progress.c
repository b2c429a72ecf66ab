/*
 * progress.c - training progress: on a terminal a live bar (step, losses,
 * steps/s, ETA) redrawn at most 10 times a second; otherwise one log line
 * every 10% of the run; nothing with --quiet.  Written to stderr.
 */
#include "cli.h"

#include <math.h>
#include <unistd.h>

void progress_init(progress *p, int quiet) {
    p->quiet = quiet;
    p->tty = isatty(2);
    p->t0 = now_seconds();
    p->last_print = 0;
    p->last_decile = 0;
    p->first_step = (size_t)-1;
}

void progress_update(progress *p, const nf_train_progress *tp) {
    if (p->quiet || tp->total_steps == 0) return;
    if (p->first_step == (size_t)-1) p->first_step = tp->step > 0 ? tp->step - 1 : 0;
    double t = now_seconds() - p->t0, rate = (double)(tp->step - p->first_step) / (t > 1e-9 ? t : 1e-9);
    double eta = (double)(tp->total_steps - tp->step) / (rate > 0 ? rate : 1);
    char val[32] = "";
    if (!isnan(tp->val_loss)) snprintf(val, sizeof val, "  val %.4f", tp->val_loss);
    if (p->tty) {
        if (t - p->last_print < 0.1 && tp->step < tp->total_steps) return;
        p->last_print = t;
        int width = 24, fill = (int)(width * (double)tp->step / (double)tp->total_steps);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[width] = 0;
        char ep[32] = "";
        if (tp->epoch) snprintf(ep, sizeof ep, " epoch %zu", tp->epoch);
        fprintf(stderr, "\rstep %zu/%zu [%s]%s loss %.4f%s  %.0f steps/s  ETA %.0fs   ", tp->step, tp->total_steps, bar,
                ep, tp->train_loss, val, rate, eta);
    } else {
        size_t dec = (size_t)(10.0 * (double)tp->step / (double)tp->total_steps);
        if (dec <= p->last_decile && tp->step < tp->total_steps) return;
        p->last_decile = dec;
        char ep[32] = "";
        if (tp->epoch) snprintf(ep, sizeof ep, "  epoch %zu", tp->epoch);
        fprintf(stderr, "step %zu/%zu (%3.0f%%)%s  loss %.4f%s  %.0f steps/s  %.1fs elapsed\n", tp->step,
                tp->total_steps, 100.0 * (double)tp->step / (double)tp->total_steps, ep, tp->train_loss, val, rate, t);
    }
}

void progress_done(progress *p) {
    if (!p->quiet && p->tty) fputc('\n', stderr);
}
