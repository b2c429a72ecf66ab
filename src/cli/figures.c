/*
 * figures.c - the figures of a trained flow and the HTML report:
 *   samples   data vs flow samples side by side (seed 002's compare_samples)
 *   density   the learned density on a grid (200 x 200, --grid), with contours (d = 2)
 *   flow_2x2  dataflowr's z = f^-1(X), z ~ p(z), X ~ p(X), X = f(z)
 *   stages    samples after each bijector of the chain, titled by name
 *   loss      training and validation loss curves
 * Scatter figures show the first two coordinates.
 */
#include "cli.h"
#include "../plot/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Range of column c of n rows (stride d): 0.5%..99.5% quantiles widened by 15%. */
static void range_of(const float *x, size_t n, size_t d, size_t c, double *lo, double *hi) {
    float *v = malloc(n * sizeof(float));
    if (!v || n == 0) {
        free(v);
        *lo = -3, *hi = 3;
        return;
    }
    for (size_t i = 0; i < n; i++) v[i] = x[i * d + c];
    qsort(v, n, sizeof(float), cmp_float);
    double a = v[(size_t)(0.005 * (double)(n - 1))], b = v[(size_t)(0.995 * (double)(n - 1))], m = 0.15 * (b - a + 1e-6);
    *lo = a - m, *hi = b + m;
    free(v);
}

static int finish(const char *cmd, pl_fig *f, const char *path) {
    if (!f || pl_fig_finish(f)) return fail(cmd, EXIT_DATA, "cannot write the figure %s (%s)", path, nf_last_error());
    return 0;
}

static void fig_path(char *path, size_t sz, const char *dir, const char *name, const char *fmt) {
    snprintf(path, sz, "%s/%s.%s", dir, name, fmt);
}

int write_history(const char *cmd, const char *path, const char *header, const double *train, const double *val, size_t n,
                  size_t every) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return fail(cmd, EXIT_DATA, "out of memory writing %s", path);
    fprintf(f, "%s\n", header);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%zu,", (i + 1) * every);
        if (isfinite(train[i])) fprintf(f, "%.9g", train[i]);
        if (val) {
            fputc(',', f);
            if (!isnan(val[i])) fprintf(f, "%.9g", val[i]); /* inf stays: rows given density 0 */
        }
        fputc('\n', f);
    }
    int rc = fclose(f) ? fail(cmd, EXIT_DATA, "out of memory writing %s", path)
             : nf_write_file(path, buf, len) ? fail(cmd, EXIT_DATA, "%s", nf_last_error())
                                             : 0;
    free(buf);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The loss axis: from the lowest value to the 95th percentile plus a
 * third of the spread, so that one spike does not flatten the curves;
 * *clipped says whether some values lie above it. */
static void loss_range(const run_info *info, double *lo, double *hi, int *clipped) {
    size_t n = 0, m = info->n_hist;
    double *v = malloc(2 * m * sizeof(double) + 1);
    for (size_t i = 0; v && i < m; i++) {
        if (isfinite(info->train_hist[i])) v[n++] = info->train_hist[i];
        if (isfinite(info->val_hist[i])) v[n++] = info->val_hist[i];
    }
    *lo = 0;
    *hi = 1;
    *clipped = 0;
    if (n) {
        qsort(v, n, sizeof *v, cmp_double);
        double p95 = v[(size_t)(0.95 * (double)(n - 1))];
        *lo = v[0];
        *hi = p95 + (p95 - v[0]) / 3;
        if (!(*hi > *lo)) *hi = *lo + 1e-3 + 1e-3 * fabs(*lo);
        *clipped = v[n - 1] > *hi;
    }
    for (size_t i = 0; i < m && !*clipped; i++) *clipped = isinf(info->val_hist[i]) && info->val_hist[i] > 0;
    free(v);
}

/* The loss curves (train and, when there is one, validation), the epoch
 * whose parameters were kept marked. */
static int loss_figure(const char *cmd, const char *dir, const char *fmt, const run_info *info, char names[][64],
                       int *nfig) {
    char path[4096], title[160];
    int rc = 0;
    if (info && info->n_hist) {
        double *xs = malloc(info->n_hist * sizeof(double)), lo, hi;
        if (!xs) return fail(cmd, EXIT_DATA, "out of memory");
        int has_val = 0, clipped;
        for (size_t i = 0; i < info->n_hist; i++) {
            xs[i] = (double)((i + 1) * info->hist_every);
            has_val |= !isnan(info->val_hist[i]);
        }
        loss_range(info, &lo, &hi, &clipped);
        snprintf(title, sizeof title, "%s%s", info->loss_name ? info->loss_name : "negative log-likelihood (nats)",
                 clipped ? " (axis clipped above)" : "");
        fig_path(path, sizeof path, dir, "loss", fmt);
        pl_fig *f = pl_fig_new(path, fmt, 1, 1, 460, 320);
        if (f) {
            double pad = 0.05 * (hi - lo);
            pl_panel(f, 0, title, 0, xs[info->n_hist - 1], lo - pad, hi + pad, info->hist_every == 1 ? "epoch" : "step",
                     info->loss_name ? "nats" : "mean NLL");
            pl_line(f, xs, info->train_hist, info->n_hist, PL_BLUE, 1.5, info->loss_name ? "estimate" : "train", 0);
            if (has_val) pl_line(f, xs, info->val_hist, info->n_hist, PL_ORANGE, 1.5, "validation", 1);
            if (info->restored) {
                double bx[2] = {(double)info->best_epoch, (double)info->best_epoch}, by[2] = {lo - pad, hi + pad};
                pl_line(f, bx, by, 2, PL_GREEN, 1.0, "kept", 2);
            }
        }
        free(xs);
        if ((rc = finish(cmd, f, path))) return rc;
        snprintf(names[(*nfig)++], 64, "loss.%s", fmt);
    }
    return rc;
}

/* A conditional flow's figure: the data coloured by context, then samples
 * for each of the first (up to 4) distinct context rows of the data.  data
 * rows are [x (d) | context (dc)]. */
static int cond_figure(const char *cmd, const nf_flow *flow, const float *data, size_t n, const char *dir,
                       const char *fmt, char names[][64], int *nfig) {
    size_t d = nf_flow_dim(flow), dc = nf_flow_context_dim(flow), D = d + dc, m = 1000, nd = n < 4000 ? n : 4000;
    static const pl_rgb cols[4] = {PL_BLUE, PL_ORANGE, PL_GREEN, PL_RED};
    if (d < 2 || !data || !nd) return 0;
    size_t uniq[4], nu = 0;
    for (size_t i = 0; i < nd && nu < 4; i++) {
        int seen = 0;
        for (size_t u = 0; u < nu; u++) seen |= !memcmp(data + i * D + d, data + uniq[u] * D + d, dc * sizeof(float));
        if (!seen) uniq[nu++] = i;
    }
    float *ctx = malloc(m * dc * sizeof(float)), *xs = malloc(nu * m * d * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(7, &rng);
    int rc = 0;
    for (size_t u = 0; ctx && xs && u < nu && !rc; u++) {
        for (size_t i = 0; i < m; i++) memcpy(ctx + i * dc, data + uniq[u] * D + d, dc * sizeof(float));
        if (nf_flow_sample_ctx(flow, rng, ctx, m, xs + u * m * d))
            rc = fail(cmd, EXIT_NUMERIC, "sampling for figures: %s", nf_last_error());
    }
    if (!ctx || !xs) rc = fail(cmd, EXIT_DATA, "out of memory for figures");
    if (!rc) {
        double x0, x1, y0, y1;
        range_of(data, nd, D, 0, &x0, &x1);
        range_of(data, nd, D, 1, &y0, &y1);
        char path[4096];
        fig_path(path, sizeof path, dir, "samples_by_context", fmt);
        pl_fig *f = pl_fig_new(path, fmt, (int)nu + 1, 1, 330, 310);
        if (f) {
            pl_panel(f, 0, "data (colour: context)", x0, x1, y0, y1, "x1", "x2");
            for (size_t i = 0; i < nd; i++)
                for (size_t u = 0; u < nu; u++)
                    if (!memcmp(data + i * D + d, data + uniq[u] * D + d, dc * sizeof(float)))
                        pl_scatter(f, data + i * D, 1, D, cols[u], 1.6, 0.5);
            for (size_t u = 0; u < nu; u++) {
                char title[96];
                snprintf(title, sizeof title, "samples, context %g%s", (double)data[uniq[u] * D + d], dc > 1 ? ", ..." : "");
                pl_panel(f, (int)u + 1, title, x0, x1, y0, y1, "x1", "x2");
                pl_scatter(f, xs + u * m * d, m, d, cols[u], 1.6, 0.5);
            }
        }
        if (!(rc = finish(cmd, f, path))) snprintf(names[(*nfig)++], 64, "samples_by_context.%s", fmt);
    }
    free(ctx), free(xs);
    nf_rng_free(rng);
    return rc;
}

/* Images: 64 training images beside 64 samples (the first channel), then the loss. */
static int image_figures(const char *cmd, const nf_flow *flow, const float *data, size_t n, const char *dir,
                         const char *fmt, const run_info *info, char names[][64], int *nfig) {
    size_t d = nf_flow_dim(flow), m = 64, nd = n < m ? n : m, H = info->image[1], W = info->image[2];
    float *s = malloc(m * d * sizeof(float)), *a = malloc(m * H * W * sizeof(float)), *b = malloc(m * H * W * sizeof(float));
    nf_rng *rng = NULL;
    int rc = 0;
    if (!s || !a || !b || nf_rng_create(7, &rng)) rc = fail(cmd, EXIT_DATA, "out of memory for figures");
    if (!rc && nf_flow_sample(flow, rng, m, s)) rc = fail(cmd, EXIT_NUMERIC, "sampling for figures: %s", nf_last_error());
    if (!rc) {
        for (size_t k = 0; k < m; k++) /* channel 0 of each */
            for (size_t q = 0; q < H * W; q++) {
                a[k * H * W + q] = k < nd ? data[k * d + q] : 0;
                b[k * H * W + q] = s[k * d + q];
            }
        char path[4096];
        fig_path(path, sizeof path, dir, "samples", fmt);
        pl_fig *f = pl_fig_new(path, fmt, 2, 1, 330, 330);
        if (f) {
            double hi = info->image_max > 0 ? info->image_max : 1;
            pl_panel(f, 0, "data (training images)", 0, 1, 0, 1, NULL, NULL);
            pl_images(f, a, nd, (int)H, (int)W, 8, 0, hi);
            pl_panel(f, 1, "flow samples", 0, 1, 0, 1, NULL, NULL);
            pl_images(f, b, m, (int)H, (int)W, 8, 0, hi);
        }
        if (!(rc = finish(cmd, f, path))) snprintf(names[(*nfig)++], 64, "samples.%s", fmt);
    }
    free(s), free(a), free(b);
    nf_rng_free(rng);
    return rc ? rc : loss_figure(cmd, dir, fmt, info, names, nfig);
}

int make_figures(const char *cmd, const nf_flow *flow, const float *data, size_t n, const char *dir,
                 const run_info *info, char names[][64], int *nfig) {
    if (info && info->image[0]) {
        *nfig = 0;
        return image_figures(cmd, flow, data, n, dir, info->format ? info->format : "png", info, names, nfig);
    }
    size_t d = nf_flow_dim(flow), m = 2000;
    const char *fmt = info->format ? info->format : "png";
    char path[4096];
    int rc = 0;
    *nfig = 0;
    nf_rng *rng = NULL;
    if (nf_flow_context_dim(flow)) { /* conditional: samples per context, then the loss */
        if ((rc = cond_figure(cmd, flow, data, n, dir, fmt, names, nfig))) return rc;
        return loss_figure(cmd, dir, fmt, info, names, nfig);
    }
    nf_rng_create(7, &rng);
    size_t ns = nf_flow_stage_count(flow);
    float *st = malloc(ns * m * d * sizeof(float)), *zdata = NULL;
    const char **snames = malloc(ns * sizeof(char *));
    if (!st || !snames) return fail(cmd, EXIT_DATA, "out of memory for figures");
    if (nf_flow_sample_stages(flow, rng, m, st, snames)) return fail(cmd, EXIT_NUMERIC, "sampling for figures: %s", nf_last_error());
    const float *samples = st + (ns - 1) * m * d;
    size_t nd = data ? (n < m ? n : m) : 0;
    if (d >= 2) {
        double x0, x1, y0, y1;
        range_of(data && nd ? data : samples, data && nd ? nd : m, d, 0, &x0, &x1);
        range_of(data && nd ? data : samples, data && nd ? nd : m, d, 1, &y0, &y1);
        /* data vs samples */
        fig_path(path, sizeof path, dir, "samples", fmt);
        pl_fig *f = pl_fig_new(path, fmt, 2, 1, 360, 330);
        if (f) {
            pl_panel(f, 0, "data", x0, x1, y0, y1, "x1", "x2");
            if (nd) pl_scatter(f, data, nd, d, PL_BLUE, 1.6, 0.5);
            pl_panel(f, 1, "flow samples", x0, x1, y0, y1, "x1", "x2");
            pl_scatter(f, samples, m, d, PL_ORANGE, 1.6, 0.5);
        }
        if ((rc = finish(cmd, f, path))) goto out;
        snprintf(names[(*nfig)++], 64, "samples.%s", fmt);
        /* learned density */
        if (d == 2) {
            const int G = info && info->grid > 1 ? info->grid : 200;
            float *grid = malloc((size_t)G * G * 2 * sizeof(float)), *lp = malloc((size_t)G * G * sizeof(float));
            if (!grid || !lp) {
                free(grid), free(lp);
                rc = fail(cmd, EXIT_DATA, "out of memory");
                goto out;
            }
            for (int j = 0; j < G; j++)
                for (int i = 0; i < G; i++) {
                    grid[2 * (j * G + i)] = (float)(x0 + (x1 - x0) * i / (G - 1));
                    grid[2 * (j * G + i) + 1] = (float)(y0 + (y1 - y0) * j / (G - 1));
                }
            int ok = nf_flow_log_prob(flow, grid, (size_t)G * G, lp) == NF_OK;
            double zmax = 0;
            for (int k = 0; ok && k < G * G; k++) {
                lp[k] = isfinite(lp[k]) ? expf(lp[k]) : 0.0f;
                if (lp[k] > zmax) zmax = lp[k];
            }
            if (ok) {
                fig_path(path, sizeof path, dir, "density", fmt);
                f = pl_fig_new(path, fmt, 1, 1, 420, 360);
                if (f) {
                    pl_panel(f, 0, "learned density p(x)", x0, x1, y0, y1, "x1", "x2");
                    pl_heatmap(f, lp, G, G, 0, zmax > 0 ? zmax : 1, "density");
                    pl_contours(f, lp, G, G, 0, zmax > 0 ? zmax : 1, 6);
                }
                if (!(rc = finish(cmd, f, path))) snprintf(names[(*nfig)++], 64, "density.%s", fmt);
            }
            free(grid), free(lp);
            if (rc) goto out;
        }
        /* dataflowr's 2 x 2 */
        if (nd) {
            zdata = malloc(nd * d * sizeof(float));
            if (zdata && nf_flow_to_base(flow, data, nd, zdata) == NF_OK) {
                fig_path(path, sizeof path, dir, "flow_2x2", fmt);
                f = pl_fig_new(path, fmt, 2, 2, 330, 310);
                if (f) {
                    pl_panel(f, 0, "z = f^-1(X)", -4, 4, -4, 4, "z1", "z2");
                    pl_scatter(f, zdata, nd, d, PL_RED, 1.5, 0.5);
                    pl_panel(f, 1, "z ~ p(z)", -4, 4, -4, 4, "z1", "z2");
                    pl_scatter(f, st, m, d, PL_GREEN, 1.5, 0.5);
                    pl_panel(f, 2, "X ~ p(X)", x0, x1, y0, y1, "x1", "x2");
                    pl_scatter(f, data, nd, d, PL_RED, 1.5, 0.5);
                    pl_panel(f, 3, "X = f(z)", x0, x1, y0, y1, "x1", "x2");
                    pl_scatter(f, samples, m, d, PL_GREEN, 1.5, 0.5);
                }
                if ((rc = finish(cmd, f, path))) goto out;
                snprintf(names[(*nfig)++], 64, "flow_2x2.%s", fmt);
            }
        }
        /* samples after each part */
        int cols = ns < 4 ? (int)ns : 4, rows = (int)((ns + 3) / 4);
        if (rows > 6) rows = 6; /* at most 24 panels */
        fig_path(path, sizeof path, dir, "stages", fmt);
        f = pl_fig_new(path, fmt, cols, rows, 260, 250);
        for (size_t s = 0; f && s < ns && s < (size_t)(cols * rows); s++) {
            const float *blk = st + s * m * d;
            double a0, a1, b0, b1;
            range_of(blk, m, d, 0, &a0, &a1);
            range_of(blk, m, d, 1, &b0, &b1);
            char title[96];
            snprintf(title, sizeof title, "%zu: %s", s, snames[s]);
            pl_panel(f, (int)s, title, a0, a1, b0, b1, NULL, NULL);
            pl_scatter(f, blk, m, d, s + 1 == ns ? PL_ORANGE : PL_BLUE, 1.2, 0.45);
        }
        if ((rc = finish(cmd, f, path))) goto out;
        snprintf(names[(*nfig)++], 64, "stages.%s", fmt);
    }
    rc = loss_figure(cmd, dir, fmt, info, names, nfig);
out:
    free(st), free(zdata), free(snames);
    nf_rng_free(rng);
    return rc;
}

/* Fills G x G points of [lo, hi]^2 (row j: second coordinate). */
static void fill_grid(float *grid, int G, double lo, double hi) {
    for (int j = 0; j < G; j++)
        for (int i = 0; i < G; i++) {
            grid[2 * (j * G + i)] = (float)(lo + (hi - lo) * i / (G - 1));
            grid[2 * (j * G + i) + 1] = (float)(lo + (hi - lo) * j / (G - 1));
        }
}

/* exp(v - max v) in place (non-finite: 0); returns 1 if any value was finite. */
static int exp_normalise(float *v, size_t n) {
    float mx = -INFINITY;
    for (size_t k = 0; k < n; k++)
        if (isfinite(v[k]) && v[k] > mx) mx = v[k];
    for (size_t k = 0; k < n; k++) v[k] = isfinite(v[k]) ? expf(v[k] - mx) : 0.0f;
    return isfinite(mx);
}

int make_fit_figures(const char *cmd, const nf_flow *flow, nf_log_density_fn target, double lo, double hi,
                     const char *dir, const run_info *info, char names[][64], int *nfig) {
    const char *fmt = info->format ? info->format : "png";
    const int G = info->grid > 1 ? info->grid : 200;
    size_t m = 2000, gg = (size_t)G * G;
    float *grid = malloc(gg * 2 * sizeof(float)), *pt = malloc(gg * sizeof(float)), *q = malloc(gg * sizeof(float));
    float *xs = malloc(m * 2 * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(7, &rng);
    int rc = 0;
    if (!grid || !pt || !q || !xs) rc = fail(cmd, EXIT_DATA, "out of memory for figures");
    if (!rc) {
        fill_grid(grid, G, lo, hi);
        if (target(NULL, grid, gg, 2, pt, NULL)) rc = fail(cmd, EXIT_NUMERIC, "the target failed on the figure grid");
    }
    if (!rc && (nf_flow_log_prob(flow, grid, gg, q) || nf_flow_sample(flow, rng, m, xs)))
        rc = fail(cmd, EXIT_NUMERIC, "evaluating the fitted flow for figures: %s", nf_last_error());
    if (!rc) {
        exp_normalise(pt, gg), exp_normalise(q, gg);
        char path[4096];
        fig_path(path, sizeof path, dir, "fit", fmt);
        pl_fig *f = pl_fig_new(path, fmt, 3, 1, 360, 330);
        if (f) {
            pl_panel(f, 0, "target exp(-U)", lo, hi, lo, hi, "x1", "x2");
            pl_heatmap(f, pt, G, G, 0, 1, NULL);
            pl_panel(f, 1, "fitted density q", lo, hi, lo, hi, "x1", "x2");
            pl_heatmap(f, q, G, G, 0, 1, NULL);
            pl_panel(f, 2, "samples of q", lo, hi, lo, hi, "x1", "x2");
            pl_scatter(f, xs, m, 2, PL_ORANGE, 1.4, 0.5);
        }
        if (!(rc = finish(cmd, f, path))) snprintf(names[(*nfig)++], 64, "fit.%s", fmt);
    }
    if (!rc) rc = loss_figure(cmd, dir, fmt, info, names, nfig);
    free(grid), free(pt), free(q), free(xs);
    nf_rng_free(rng);
    return rc;
}

/* ---- report ---------------------------------------------------------------- */

static void html_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static int embed(FILE *out, const char *path, const char *mime) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fprintf(out, "data:%s;base64,", mime);
    unsigned char in[3];
    size_t k;
    while ((k = fread(in, 1, 3, f)) > 0) {
        unsigned v = in[0] << 16 | (k > 1 ? in[1] << 8 : 0) | (k > 2 ? in[2] : 0);
        fputc(b64[v >> 18 & 63], out);
        fputc(b64[v >> 12 & 63], out);
        fputc(k > 1 ? b64[v >> 6 & 63] : '=', out);
        fputc(k > 2 ? b64[v & 63] : '=', out);
    }
    fclose(f);
    return 0;
}

int write_report(const char *cmd, const char *dir, const run_info *info, char names[][64], int nfig) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len); /* written with nf_write_file at the end */
    if (!f) return fail(cmd, EXIT_DATA, "out of memory writing %s", path);
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nflow report</title>\n"
          "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
          "td{padding:2px 12px 2px 0;vertical-align:top}code{background:#f3f3f3;padding:1px 4px}"
          "img{max-width:100%;border:1px solid #ddd;margin:6px 0}</style></head><body>\n",
          f);
    fputs(info->loss_name ? "<h1>nflow fit-density report</h1>" : "<h1>nflow training report</h1>", f);
    fputs("\n<table>\n<tr><td>command</td><td><code>", f);
    html_escape(f, info->cmdline);
    fputs("</code></td></tr>\n<tr><td>flow</td><td><code>", f);
    html_escape(f, info->spec);
    fprintf(f, "</code></td></tr>\n<tr><td>data</td><td>");
    html_escape(f, info->data_name);
    fprintf(f, " (dimension %zu)</td></tr>\n<tr><td>parameters</td><td>%zu</td></tr>\n", info->dim, info->n_params);
    if (info->epochs)
        fprintf(f, "<tr><td>training</td><td>%zu steps, %zu epochs, %.1f s</td></tr>\n", info->steps, info->epochs, info->seconds);
    else
        fprintf(f, "<tr><td>training</td><td>%zu steps on fresh batches, %.1f s</td></tr>\n", info->steps, info->seconds);
    if (info->restored)
        fprintf(f, "<tr><td>parameters kept</td><td id=\"kept\">epoch %zu's, the best validation NLL: early stopping put "
                   "them back after %zu epochs without improvement</td></tr>\n",
                info->best_epoch, info->patience);
    if (info->loss_name)
        fprintf(f, "<tr><td>final %s</td><td id=\"train-nll\">%.4f nats</td></tr>\n", info->loss_name, info->train_nll);
    else if (info->restored)
        fprintf(f, "<tr><td>train NLL (epoch %zu's mean)</td><td id=\"train-nll\">%.4f nats</td></tr>\n", info->best_epoch,
                info->train_nll);
    else
        fprintf(f, "<tr><td>final train NLL</td><td id=\"train-nll\">%.4f nats</td></tr>\n", info->train_nll);
    if (isfinite(info->val_nll))
        fprintf(f, "<tr><td>validation NLL (the rows early stopping watched)</td><td id=\"val-nll\">%.4f nats</td></tr>\n",
                info->val_nll);
    if (isfinite(info->test_nll)) {
        fprintf(f, "<tr><td>test NLL</td><td id=\"test-nll\">%.4f nats (", info->test_nll);
        html_escape(f, info->test_what);
        fputs(")</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    for (int i = 0; i < nfig; i++) {
        char fp[4200];
        snprintf(fp, sizeof fp, "%s/%s", dir, names[i]);
        const char *ext = strrchr(names[i], '.');
        fprintf(f, "<h2>%.*s</h2>\n", (int)(ext - names[i]), names[i]);
        if (ext && !strcmp(ext, ".pdf")) {
            fprintf(f, "<p><a href=\"%s\">%s</a></p>\n", names[i], names[i]);
            continue;
        }
        fprintf(f, "<img alt=\"%s\" src=\"", names[i]);
        embed(f, fp, ext && !strcmp(ext, ".svg") ? "image/svg+xml" : "image/png");
        fputs("\">\n", f);
    }
    fputs("</body></html>\n", f);
    int ok = fclose(f) == 0;
    int rc = !ok ? fail(cmd, EXIT_DATA, "out of memory writing %s", path)
             : nf_write_file(path, html, len) ? fail(cmd, EXIT_DATA, "%s", nf_last_error())
                                              : 0;
    free(html);
    return rc;
}
