/*
 * plot.c - see plot.h.  Panels get margins for tick labels, axis labels, a
 * title and an optional colour bar; "nice" tick steps of 1, 2 or 5 x 10^k.
 */
#include "plot.h"
#include "nflow.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PL_PI 3.14159265358979323846
#define ML 52.0 /* left margin */
#define MR 78.0 /* right margin (room for a colour bar) */
#define MT 30.0
#define MB 42.0

struct pl_fig {
    cairo_surface_t *surf;
    cairo_t *cr;
    char path[4096];
    unsigned char *buf; /* the file's bytes, written at the end by nf_write_file */
    size_t len, cap;
    int oom;
    int png, ncols, nrows;
    double w, h;
    /* current panel: device rectangle and data ranges */
    double px, py, pw, ph, x0, x1, y0, y1;
};

/* cairo's stream callback: appends to the figure's buffer. */
static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int n) {
    pl_fig *f = closure;
    if (f->len + n > f->cap) {
        size_t nc = f->cap ? 2 * f->cap : 1 << 16;
        while (nc < f->len + n) nc *= 2;
        unsigned char *nb = realloc(f->buf, nc);
        if (!nb) {
            f->oom = 1;
            return CAIRO_STATUS_NO_MEMORY;
        }
        f->buf = nb;
        f->cap = nc;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return CAIRO_STATUS_SUCCESS;
}

pl_fig *pl_fig_new(const char *path, const char *format, int ncols, int nrows, double w, double h) {
    pl_fig *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    snprintf(f->path, sizeof f->path, "%s", path);
    f->ncols = ncols, f->nrows = nrows, f->w = w, f->h = h;
    double W = w * ncols, H = h * nrows;
    if (!strcmp(format, "svg")) f->surf = cairo_svg_surface_create_for_stream(to_buf, f, W, H);
    else if (!strcmp(format, "pdf")) f->surf = cairo_pdf_surface_create_for_stream(to_buf, f, W, H);
    else {
        f->png = 1;
        f->surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)(2 * W), (int)(2 * H));
    }
    if (cairo_surface_status(f->surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(f->surf);
        free(f);
        return NULL;
    }
    f->cr = cairo_create(f->surf);
    if (f->png) cairo_scale(f->cr, 2, 2); /* 2x resolution for crisp PNGs */
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_select_font_face(f->cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return f;
}

static double tx(const pl_fig *f, double x) { return f->px + (x - f->x0) / (f->x1 - f->x0) * f->pw; }
static double ty(const pl_fig *f, double y) { return f->py + f->ph - (y - f->y0) / (f->y1 - f->y0) * f->ph; }

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void text(cairo_t *cr, double x, double y, const char *s, double ax, double ay, double size, double angle) {
    cairo_text_extents_t e;
    cairo_save(cr);
    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &e);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ax * e.width - e.x_bearing, ay * e.height);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", dec, v);
}

void pl_panel(pl_fig *f, int idx, const char *title, double x0, double x1, double y0, double y1, const char *xlabel,
              const char *ylabel) {
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    int c = idx % f->ncols, r = idx / f->ncols;
    f->px = c * f->w + ML, f->py = r * f->h + MT, f->pw = f->w - ML - MR, f->ph = f->h - MT - MB;
    f->x0 = x0, f->x1 = x1, f->y0 = y0, f->y1 = y1;
    cairo_t *cr = f->cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 0.8);
    double sx = nice_step(x1 - x0, 5), sy = nice_step(y1 - y0, 5);
    char buf[32];
    for (double v = ceil(x0 / sx) * sx; v <= x1 + 1e-9 * sx; v += sx) {
        cairo_move_to(cr, tx(f, v), f->py + f->ph);
        cairo_line_to(cr, tx(f, v), f->py + f->ph + 4);
        fmt_tick(buf, sizeof buf, v, sx);
        text(cr, tx(f, v), f->py + f->ph + 15, buf, 0.5, 0, 9, 0);
    }
    for (double v = ceil(y0 / sy) * sy; v <= y1 + 1e-9 * sy; v += sy) {
        cairo_move_to(cr, f->px - 4, ty(f, v));
        cairo_line_to(cr, f->px, ty(f, v));
        fmt_tick(buf, sizeof buf, v, sy);
        text(cr, f->px - 6, ty(f, v), buf, 1, 0.4, 9, 0);
    }
    cairo_stroke(cr);
    cairo_rectangle(cr, f->px, f->py, f->pw, f->ph);
    cairo_stroke(cr);
    if (title) text(cr, f->px + f->pw / 2, f->py - 10, title, 0.5, 0, 12, 0);
    if (xlabel) text(cr, f->px + f->pw / 2, f->py + f->ph + 33, xlabel, 0.5, 0, 10, 0);
    if (ylabel) text(cr, f->px - 40, f->py + f->ph / 2, ylabel, 0.5, 0, 10, -PL_PI / 2);
}

static void clip_panel(pl_fig *f) {
    cairo_save(f->cr);
    cairo_rectangle(f->cr, f->px, f->py, f->pw, f->ph);
    cairo_clip(f->cr);
}

void pl_scatter(pl_fig *f, const float *xy, size_t n, size_t stride, pl_rgb c, double radius, double alpha) {
    clip_panel(f);
    cairo_set_source_rgba(f->cr, c.r, c.g, c.b, alpha);
    for (size_t i = 0; i < n; i++) {
        double x = tx(f, xy[i * stride]), y = ty(f, xy[i * stride + 1]);
        cairo_new_sub_path(f->cr);
        cairo_arc(f->cr, x, y, radius, 0, 2 * PL_PI);
    }
    cairo_fill(f->cr);
    cairo_restore(f->cr);
}

void pl_line(pl_fig *f, const double *x, const double *y, size_t n, pl_rgb c, double width, const char *legend,
             int slot) {
    clip_panel(f);
    cairo_set_source_rgb(f->cr, c.r, c.g, c.b);
    cairo_set_line_width(f->cr, width);
    int pen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            pen = 0;
            continue;
        }
        if (pen) cairo_line_to(f->cr, tx(f, x[i]), ty(f, y[i]));
        else cairo_move_to(f->cr, tx(f, x[i]), ty(f, y[i]));
        pen = 1;
    }
    cairo_stroke(f->cr);
    cairo_restore(f->cr);
    if (legend) {
        double lx = f->px + f->pw - 90, ly = f->py + 14 + 14 * slot;
        cairo_set_source_rgb(f->cr, c.r, c.g, c.b);
        cairo_move_to(f->cr, lx, ly);
        cairo_line_to(f->cr, lx + 18, ly);
        cairo_stroke(f->cr);
        cairo_set_source_rgb(f->cr, 0, 0, 0);
        text(f->cr, lx + 22, ly, legend, 0, 0.4, 9, 0);
    }
}

/* viridis, sampled at 9 points */
static pl_rgb viridis(double t) {
    static const double v[9][3] = {{0.267, 0.005, 0.329}, {0.279, 0.175, 0.483}, {0.230, 0.322, 0.546},
                                   {0.173, 0.449, 0.558}, {0.128, 0.567, 0.551}, {0.154, 0.681, 0.504},
                                   {0.370, 0.789, 0.383}, {0.679, 0.864, 0.190}, {0.993, 0.906, 0.144}};
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double s = t * 8;
    int k = (int)s;
    if (k >= 8) k = 7;
    double u = s - k;
    return (pl_rgb){v[k][0] + u * (v[k + 1][0] - v[k][0]), v[k][1] + u * (v[k + 1][1] - v[k][1]),
                    v[k][2] + u * (v[k + 1][2] - v[k][2])};
}

void pl_heatmap(pl_fig *f, const float *z, int nx, int ny, double zmin, double zmax, const char *zlabel) {
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, nx, ny);
    unsigned char *px = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    cairo_surface_flush(img);
    for (int j = 0; j < ny; j++)
        for (int i = 0; i < nx; i++) {
            pl_rgb c = viridis((z[j * nx + i] - zmin) / (zmax - zmin));
            uint32_t *p = (uint32_t *)(px + (ny - 1 - j) * stride) + i;
            *p = (uint32_t)(c.r * 255) << 16 | (uint32_t)(c.g * 255) << 8 | (uint32_t)(c.b * 255);
        }
    cairo_surface_mark_dirty(img);
    cairo_save(f->cr);
    cairo_rectangle(f->cr, f->px, f->py, f->pw, f->ph);
    cairo_clip(f->cr);
    cairo_translate(f->cr, f->px, f->py);
    cairo_scale(f->cr, f->pw / nx, f->ph / ny);
    cairo_set_source_surface(f->cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(f->cr), CAIRO_FILTER_BILINEAR);
    cairo_paint(f->cr);
    cairo_restore(f->cr);
    cairo_surface_destroy(img);
    /* colour bar */
    double bx = f->px + f->pw + 10, bw = 12;
    for (int k = 0; k < 100; k++) {
        pl_rgb c = viridis(k / 99.0);
        cairo_set_source_rgb(f->cr, c.r, c.g, c.b);
        cairo_rectangle(f->cr, bx, f->py + f->ph * (1 - (k + 1) / 100.0), bw, f->ph / 100.0 + 0.5);
        cairo_fill(f->cr);
    }
    cairo_set_source_rgb(f->cr, 0, 0, 0);
    cairo_set_line_width(f->cr, 0.8);
    cairo_rectangle(f->cr, bx, f->py, bw, f->ph);
    cairo_stroke(f->cr);
    double st = nice_step(zmax - zmin, 5);
    char buf[32];
    for (double v = ceil(zmin / st) * st; v <= zmax + 1e-9 * st; v += st) {
        double y = f->py + f->ph * (1 - (v - zmin) / (zmax - zmin));
        cairo_move_to(f->cr, bx + bw, y);
        cairo_line_to(f->cr, bx + bw + 3, y);
        cairo_stroke(f->cr);
        fmt_tick(buf, sizeof buf, v, st);
        text(f->cr, bx + bw + 5, y, buf, 0, 0.4, 8, 0);
    }
    if (zlabel) text(f->cr, bx + bw + 44, f->py + f->ph / 2, zlabel, 0.5, 0, 9, PL_PI / 2);
}

void pl_images(pl_fig *f, const float *img, size_t count, int h, int w, int cols, double vmin, double vmax) {
    int rows = (int)((count + (size_t)cols - 1) / (size_t)cols), gap = 1;
    int W = cols * (w + gap) + gap, H = rows * (h + gap) + gap;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    unsigned char *px = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    cairo_surface_flush(s);
    for (int y = 0; y < H; y++) /* a grey grid between the images */
        for (int x = 0; x < W; x++) *((uint32_t *)(px + y * stride) + x) = 0x808080u;
    for (size_t k = 0; k < count; k++) {
        int r0 = (int)(k / (size_t)cols) * (h + gap) + gap, c0 = (int)(k % (size_t)cols) * (w + gap) + gap;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = (img[k * (size_t)(h * w) + (size_t)(y * w + x)] - vmin) / (vmax - vmin);
                uint32_t g = (uint32_t)(255 * (1 - (v < 0 ? 0 : v > 1 ? 1 : v))); /* ink is dark */
                *((uint32_t *)(px + (r0 + y) * stride) + c0 + x) = g << 16 | g << 8 | g;
            }
    }
    cairo_surface_mark_dirty(s);
    cairo_save(f->cr);
    double sc = fmin(f->pw / W, f->ph / H);
    cairo_translate(f->cr, f->px + (f->pw - sc * W) / 2, f->py + (f->ph - sc * H) / 2);
    cairo_scale(f->cr, sc, sc);
    cairo_set_source_surface(f->cr, s, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(f->cr), CAIRO_FILTER_NEAREST);
    cairo_paint(f->cr);
    cairo_restore(f->cr);
    cairo_surface_destroy(s);
}

void pl_contours(pl_fig *f, const float *z, int nx, int ny, double zmin, double zmax, int nlev) {
    clip_panel(f);
    cairo_set_source_rgba(f->cr, 1, 1, 1, 0.7);
    cairo_set_line_width(f->cr, 0.6);
    double dx = (f->x1 - f->x0) / (nx - 1), dy = (f->y1 - f->y0) / (ny - 1);
    for (int l = 1; l <= nlev; l++) {
        double lev = zmin + (zmax - zmin) * l / (nlev + 1);
        for (int j = 0; j + 1 < ny; j++)
            for (int i = 0; i + 1 < nx; i++) {
                double v[4] = {z[j * nx + i], z[j * nx + i + 1], z[(j + 1) * nx + i + 1], z[(j + 1) * nx + i]};
                double cx[4] = {0, 1, 1, 0}, cy[4] = {0, 0, 1, 1}, px[4], py[4];
                int k = 0;
                for (int e = 0; e < 4; e++) {
                    double a = v[e], b = v[(e + 1) % 4];
                    if ((a < lev) != (b < lev)) {
                        double t = (lev - a) / (b - a);
                        px[k] = cx[e] + t * (cx[(e + 1) % 4] - cx[e]);
                        py[k] = cy[e] + t * (cy[(e + 1) % 4] - cy[e]);
                        k++;
                    }
                }
                for (int q = 0; q + 1 < k; q += 2) {
                    cairo_move_to(f->cr, tx(f, f->x0 + (i + px[q]) * dx), ty(f, f->y0 + (j + py[q]) * dy));
                    cairo_line_to(f->cr, tx(f, f->x0 + (i + px[q + 1]) * dx), ty(f, f->y0 + (j + py[q + 1]) * dy));
                }
            }
        cairo_stroke(f->cr);
    }
    cairo_restore(f->cr);
}

int pl_fig_finish(pl_fig *f) {
    int rc = 0;
    cairo_destroy(f->cr);
    if (f->png) rc = cairo_surface_write_to_png_stream(f->surf, to_buf, f) == CAIRO_STATUS_SUCCESS ? 0 : -1;
    cairo_surface_finish(f->surf);
    if (cairo_surface_status(f->surf) != CAIRO_STATUS_SUCCESS || f->oom) rc = -1;
    cairo_surface_destroy(f->surf);
    if (!rc && nf_write_file(f->path, f->buf, f->len)) rc = -1;
    free(f->buf);
    free(f);
    return rc;
}
