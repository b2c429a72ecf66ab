/*
 * plot.h - a small plotting layer on cairo: figures of panels in a grid,
 * each with axes, ticks, labels and a title; scatter, line and heat-map
 * primitives; a colour bar; contour lines.  PNG, SVG or PDF from one code
 * path.  Linked into the nflow program only (libnflow has no graphics
 * dependency).
 */
#ifndef NF_PLOT_H
#define NF_PLOT_H

#include <stddef.h>

typedef struct pl_fig pl_fig;
typedef struct pl_rgb {
    double r, g, b;
} pl_rgb;

#define PL_BLUE ((pl_rgb){0.12, 0.47, 0.71})
#define PL_ORANGE ((pl_rgb){1.0, 0.50, 0.05})
#define PL_GREEN ((pl_rgb){0.17, 0.63, 0.17})
#define PL_RED ((pl_rgb){0.84, 0.15, 0.16})

/* A figure of ncols x nrows panels of w x h points each; format is "png",
 * "svg" or "pdf".  NULL on failure. */
pl_fig *pl_fig_new(const char *path, const char *format, int ncols, int nrows, double w, double h);
/* Selects panel idx (row-major), draws its frame, ticks, labels and title,
 * and sets the data ranges of the following primitives. */
void pl_panel(pl_fig *f, int idx, const char *title, double x0, double x1, double y0, double y1, const char *xlabel,
              const char *ylabel);
void pl_scatter(pl_fig *f, const float *xy, size_t n, size_t stride, pl_rgb c, double radius, double alpha);
void pl_line(pl_fig *f, const double *x, const double *y, size_t n, pl_rgb c, double width, const char *legend,
             int legend_slot);
/* z: ny rows of nx values over the panel's ranges (row 0 at y0); values
 * are clamped to [zmin, zmax] and drawn with the viridis colour map; a
 * colour bar labelled `zlabel` is drawn right of the panel. */
void pl_heatmap(pl_fig *f, const float *z, int nx, int ny, double zmin, double zmax, const char *zlabel);
/* Contour lines of z at `nlev` evenly spaced levels (marching squares). */
void pl_contours(pl_fig *f, const float *z, int nx, int ny, double zmin, double zmax, int nlev);
/* Writes the file; returns 0 or -1. */
/* A grid of `count` grey images of h x w values (row-major, one after another),
 * `cols` per row, filling the current panel: vmin white, vmax black. */
void pl_images(pl_fig *f, const float *img, size_t count, int h, int w, int cols, double vmin, double vmax);
int pl_fig_finish(pl_fig *f);

#endif
