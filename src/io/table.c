/*
 * table.c - numeric tables (n rows x d columns of float) in CSV and NumPy
 * .npy files, chosen by extension; "-" is stdin/stdout in CSV.
 *
 * CSV: comma or whitespace separated, '#' starts a comment, blank lines are
 * skipped, a first line none of whose fields is a number is a header (a
 * first data row with a typo is an error, never taken for a header).  Every
 * value must be finite and no field empty; errors name the file, line and
 * column.
 * NPY: versions 1-3, little-endian float32 or float64, C order, shape (n,)
 * or (n, d); every size is checked against the file length before anything
 * is allocated.
 */
#include "../core/core.h"
#include "output.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* ---- CSV ------------------------------------------------------------------ */

typedef struct growbuf {
    float *v;
    size_t n, cap;
} growbuf;

static int push(growbuf *g, float x) {
    if (g->n == g->cap) {
        size_t nc = g->cap ? 2 * g->cap : 1024;
        float *nv = realloc(g->v, nc * sizeof(float));
        if (!nv) return 0;
        g->v = nv, g->cap = nc;
    }
    g->v[g->n++] = x;
    return 1;
}

/* The token at p (up to a separator), for messages. */
static void token(const char *p, char tok[32]) {
    size_t t = 0;
    while (p[t] && p[t] != ',' && !isspace((unsigned char)p[t]) && t < 31) {
        tok[t] = p[t];
        t++;
    }
    tok[t] = 0;
}

/* Whether some field of the line parses as a whole number token. */
static int has_number(const char *p) {
    while (*p) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (!*p) break;
        char *end;
        strtod(p, &end);
        if (end != p && (!*end || *end == ',' || isspace((unsigned char)*end))) return 1;
        while (*p && *p != ',' && !isspace((unsigned char)*p)) p++;
    }
    return 0;
}

/* Parses one data line's fields into g; *k: how many. */
static nf_status csv_fields(const char *path, size_t lineno, char *line, char *p, growbuf *g, size_t *k) {
    *k = 0;
    while (*p) {
        char *end;
        size_t col = (size_t)(p - line) + 1, field = *k + 1; /* character column, and field number */
        if (*p == ',')
            return nf__err(NF_ERR_DOMAIN, "%s: line %zu, column %zu: an empty field (field %zu)", path, lineno, col, field);
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',' && !isspace((unsigned char)*end))) {
            char tok[32];
            token(p, tok);
            return nf__err(NF_ERR_DOMAIN, "%s: line %zu, column %zu: '%s' is not a number (field %zu)", path, lineno, col, tok,
                           field);
        }
        if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1))
            return nf__err(NF_ERR_DOMAIN, "%s: line %zu, column %zu: value %.*s is not a finite float", path, lineno, col,
                           (int)(end - p), p);
        if (fabs(v) > 3.4e38)
            return nf__err(NF_ERR_DOMAIN, "%s: line %zu, column %zu: value %g overflows float", path, lineno, col, v);
        if (!push(g, (float)v)) return nf__err(NF_ERR_NOMEM, "%s: out of memory at line %zu", path, lineno);
        (*k)++;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            while (isspace((unsigned char)*p)) p++;
            if (!*p)
                return nf__err(NF_ERR_DOMAIN, "%s: line %zu, column %zu: an empty field (a trailing comma)", path, lineno,
                               (size_t)(p - line) + 1);
        }
    }
    return NF_OK;
}

/* The line number of the line starting at byte `pos` (only for messages
 * of a part read, which starts in the middle of the file). */
static size_t line_number(FILE *f, long pos) {
    size_t ln = 1;
    if (fseek(f, 0, SEEK_SET)) return 0;
    for (long i = 0; i < pos; i++) {
        int c = getc(f);
        if (c == EOF) break;
        ln += c == '\n';
    }
    return ln;
}

/* Moves f to the first line that starts at or after byte lo (> 0). */
static int seek_line(FILE *f, long lo) {
    if (fseek(f, lo - 1, SEEK_SET)) return -1;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
    }
    return 0;
}

/* CSV: the first non-blank line is a header when none of its fields is a
 * number (then `header` gets it); every other line must be all numbers.
 * A part (hi >= 0): only the data lines that start in bytes [lo, hi); the
 * header and the column count still come from the file's first lines. */
static nf_status read_csv(const char *path, FILE *f, float **out, size_t *n_out, size_t *d_out, char **header, long lo,
                          long hi) {
    growbuf g = {0};
    size_t d = 0, rows = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    nf_status s = NF_OK;
    int seen_first = 0, part = hi >= 0, known = 1; /* known: lineno is right (not after a seek) */
    long pos = 0;
    while (!s && (pos = ftell(f), getline(&line, &cap, f) >= 0)) {
        lineno++;
        if (part && d && pos >= hi) break;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        if (!seen_first) {
            seen_first = 1;
            if (!has_number(p)) { /* a header: no field is a number */
                if (header) {
                    char *e = p + strlen(p);
                    while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
                    *header = strdup(p);
                }
                continue;
            }
        }
        size_t k = 0, n0 = g.n;
        s = csv_fields(path, lineno, line, p, &g, &k);
        if (s && !known) { /* after a seek: the message with the line's number */
            g.n = n0;
            s = csv_fields(path, line_number(f, pos), line, p, &g, &k);
        }
        if (s) break;
        if (d == 0) d = k;
        else if (k != d)
            s = nf__err(NF_ERR_SHAPE, "%s: line %zu has %zu columns, expected %zu like the first data row", path,
                        known ? lineno : line_number(f, pos), k, d);
        if (part && (pos < lo || pos >= hi)) { /* the first data row, read for d: another part's */
            g.n = n0;
            if (pos < lo && ftell(f) < lo) {
                if (seek_line(f, lo)) s = nf__err(NF_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
                known = 0; /* line numbers from here: counted only for a message */
            }
            continue;
        }
        rows++;
    }
    free(line);
    if (!s && ferror(f)) s = nf__err(NF_ERR_IO, "%s: read error", path);
    if (!s && (part ? d == 0 : rows == 0)) s = nf__err(NF_ERR_SHAPE, "%s: no data rows", path);
    if (s) {
        free(g.v);
        if (header) {
            free(*header);
            *header = NULL;
        }
        return s;
    }
    *out = g.v;
    *n_out = rows;
    *d_out = d;
    return NF_OK;
}

/* ---- NPY ------------------------------------------------------------------ */

static nf_status npy_error(const char *path, const char *what) {
    return nf__err(NF_ERR_DOMAIN, "%s: not a readable .npy file: %s", path, what);
}

/* Rows [r0, r1) of the array where r0, r1 are the bounds of part `part` of
 * `parts` (1 part: all); the data by offset. */
static nf_status read_npy(const char *path, FILE *f, float **out, size_t *n_out, size_t *d_out, size_t part,
                          size_t parts) {
    unsigned char head[12];
    if (fseek(f, 0, SEEK_END) != 0) return npy_error(path, "cannot seek");
    long flen = ftell(f);
    rewind(f);
    if (flen < 10 || fread(head, 1, 10, f) != 10) return npy_error(path, "shorter than a header");
    if (memcmp(head, "\x93NUMPY", 6)) return npy_error(path, "no \\x93NUMPY magic");
    int major = head[6];
    size_t hlen, pre;
    if (major == 1) {
        hlen = head[8] | (size_t)head[9] << 8, pre = 10;
    } else if (major == 2 || major == 3) {
        if (fread(head + 10, 1, 2, f) != 2) return npy_error(path, "truncated header length");
        hlen = head[8] | (size_t)head[9] << 8 | (size_t)head[10] << 16 | (size_t)head[11] << 24, pre = 12;
    } else
        return npy_error(path, "unknown format version");
    if (hlen > 65536 || pre + hlen > (size_t)flen) return npy_error(path, "header length beyond the file");
    char *h = malloc(hlen + 1);
    if (!h) return nf__err(NF_ERR_NOMEM, "%s: out of memory", path);
    if (fread(h, 1, hlen, f) != hlen) {
        free(h);
        return npy_error(path, "truncated header");
    }
    h[hlen] = 0;
    int f4 = strstr(h, "'descr': '<f4'") || strstr(h, "'descr':'<f4'");
    int f8 = strstr(h, "'descr': '<f8'") || strstr(h, "'descr':'<f8'");
    int fortran = strstr(h, "'fortran_order': True") != NULL;
    char *sh = strstr(h, "'shape':");
    size_t dims[3] = {0, 0, 0}, nd = 0;
    if (sh) {
        char *p = strchr(sh, '(');
        char *q = p ? strchr(p, ')') : NULL;
        if (p && q) {
            p++;
            while (p < q && nd < 3) {
                while (p < q && (isspace((unsigned char)*p) || *p == ',')) p++;
                if (p >= q) break;
                char *end;
                unsigned long long v = strtoull(p, &end, 10);
                if (end == p) {
                    nd = 3;
                    break;
                }
                dims[nd++] = (size_t)v;
                p = end;
            }
        }
    }
    free(h);
    if (!f4 && !f8) return npy_error(path, "dtype must be little-endian float32 ('<f4') or float64 ('<f8')");
    if (fortran) return npy_error(path, "Fortran order is not supported; save a C-ordered array");
    if (nd < 1 || nd > 2) return npy_error(path, "shape must be (n,) or (n, d)");
    size_t n = dims[0], d = nd == 2 ? dims[1] : 1, es = f4 ? 4 : 8;
    if (n == 0 || d == 0) return nf__err(NF_ERR_SHAPE, "%s: empty array (shape %zu x %zu)", path, n, d);
    if (d > ((size_t)1 << 24) || n > SIZE_MAX / es / d) return npy_error(path, "absurd shape");
    size_t need = n * d * es;
    if ((size_t)flen - pre - hlen < need)
        return nf__err(NF_ERR_DOMAIN, "%s: truncated: shape %zu x %zu needs %zu data bytes, the file has %zu", path, n, d,
                       need, (size_t)flen - pre - hlen);
    size_t r0 = nf__part(n, parts, part), r1 = nf__part(n, parts, part + 1);
    need = (r1 - r0) * d * es;
    float *x = malloc((r1 - r0) * d * sizeof(float) + 1);
    unsigned char *raw = malloc(need + 1);
    nf_status s = NF_OK;
    if (!x || !raw) s = nf__err(NF_ERR_NOMEM, "%s: out of memory for %zu x %zu", path, r1 - r0, d);
    else if (r0 && fseek(f, (long)(pre + hlen + r0 * d * es), SEEK_SET)) s = npy_error(path, "cannot seek");
    else if (fread(raw, 1, need, f) != need) s = npy_error(path, "short read");
    for (size_t i = 0; !s && i < (r1 - r0) * d; i++) {
        double v;
        if (f4) {
            float t;
            memcpy(&t, raw + 4 * i, 4);
            v = t;
        } else
            memcpy(&v, raw + 8 * i, 8);
        if (!isfinite(v) || fabs(v) > 3.4e38)
            s = nf__err(NF_ERR_DOMAIN, "%s: row %zu, column %zu: value %g is not a finite float", path, r0 + i / d, i % d, v);
        else
            x[i] = (float)v;
    }
    free(raw);
    if (s) {
        free(x);
        return s;
    }
    *out = x, *n_out = r1 - r0, *d_out = d;
    return NF_OK;
}

/* Splits a header line into exactly d names. */
static nf_status split_names(const char *path, const char *h, size_t d, char ***names) {
    char **v = calloc(d ? d : 1, sizeof *v);
    if (!v) return nf__err(NF_ERR_NOMEM, "out of memory");
    size_t k = 0;
    const char *p = h;
    while (*p) {
        while (isspace((unsigned char)*p)) p++;
        const char *e = p;
        while (*e && *e != ',' && !(isspace((unsigned char)*e) && !strchr(h, ','))) e++;
        const char *t = e;
        while (t > p && isspace((unsigned char)t[-1])) t--;
        if (k < d && !(v[k] = strndup(p, (size_t)(t - p)))) k = d + 1;
        k++;
        p = *e == ',' ? e + 1 : e;
        if (!*e) break;
    }
    if (k != d) {
        nf_free_names(v, d);
        return nf__err(NF_ERR_SHAPE, "%s: the header names %zu columns, the data have %zu", path, k, d);
    }
    *names = v;
    return NF_OK;
}

void nf_free_names(char **names, size_t d) {
    for (size_t j = 0; names && j < d; j++) free(names[j]);
    free(names);
}

/* The byte range [lo, hi) of part `part` of a CSV file's `parts`. */
static nf_status csv_range(const char *path, FILE *f, size_t part, size_t parts, long *lo, long *hi) {
    if (fseek(f, 0, SEEK_END)) return nf__err(NF_ERR_IO, "%s: cannot seek (a part needs a regular file): %s", path, strerror(errno));
    size_t size = (size_t)ftell(f);
    rewind(f);
    *lo = (long)nf__part(size, parts, part);
    *hi = (long)nf__part(size, parts, part + 1);
    return NF_OK;
}

static nf_status read_table_impl(const char *path, float **data, size_t *n, size_t *d, char ***names, size_t part,
                                 size_t parts) {
    const char *fn = parts > 1 ? "nf_read_table_part" : "nf_read_table";
    if (!path || !data || !n || !d) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    *data = NULL;
    *n = *d = 0;
    if (names) *names = NULL;
    if (parts == 0 || part >= parts) return nf__err(NF_ERR_ARG, "%s: part %zu of %zu does not exist", fn, part, parts);
    if (parts > 1 && !strcmp(path, "-")) return nf__err(NF_ERR_ARG, "%s: standard input cannot be read in parts", fn);
    int npy = ends_with(path, ".npy");
    FILE *f = strcmp(path, "-") ? fopen(path, npy ? "rb" : "r") : stdin;
    if (!f) return nf__err(NF_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    char *header = NULL;
    long lo = 0, hi = -1;
    nf_status s = !npy && parts > 1 ? csv_range(path, f, part, parts, &lo, &hi) : NF_OK;
    if (!s)
        s = npy ? read_npy(path, f, data, n, d, part, parts) : read_csv(path, f, data, n, d, names ? &header : NULL, lo, hi);
    if (f != stdin) fclose(f);
    if (!s && header) s = split_names(path, header, *d, names);
    free(header);
    if (s) {
        free(*data);
        *data = NULL;
    }
    return s;
}

nf_status nf_read_table(const char *path, float **data, size_t *n, size_t *d) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = read_table_impl(path, data, n, d, NULL, 0, 1);
    nf__clocale_leave(&loc);
    return r;
}

nf_status nf_read_table_names(const char *path, float **data, size_t *n, size_t *d, char ***names) {
    if (!names) return nf__err(NF_ERR_ARG, "nf_read_table_names: names is NULL");
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = read_table_impl(path, data, n, d, names, 0, 1);
    nf__clocale_leave(&loc);
    return r;
}

nf_status nf_read_table_part(const char *path, size_t part, size_t parts, float **data, size_t *n, size_t *d,
                             char ***names) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = read_table_impl(path, data, n, d, names, part, parts);
    nf__clocale_leave(&loc);
    return r;
}

/* vector: a 1-D array (shape (n,) in .npy; d must be 1). */
static nf_status write_impl(const char *path, const float *x, size_t n, size_t d, const char *header, int vector) {
    const char *fn = "nf_write_table";
    if (!path || (n && !x) || d == 0) return nf__err(NF_ERR_ARG, "%s: bad arguments", fn);
    int npy = ends_with(path, ".npy");
    nf_out o;
    nf_status s = nf__out_open(&o, path);
    if (s) return nf__err_prefix(s, fn);
    FILE *f = o.fp;
    int ok = 1;
    if (npy) {
        char h[128];
        int len = vector ? snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", n)
                         : snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", n, d);
        size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64;
        unsigned short hl = (unsigned short)(len + 1 + pad);
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
        ok &= fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)len, f) == (size_t)len;
        for (size_t i = 0; i < pad; i++) ok &= fputc(' ', f) != EOF;
        ok &= fputc('\n', f) != EOF;
        ok &= fwrite(x, sizeof(float), n * d, f) == n * d; /* little-endian hosts only (x86-64, arm64) */
    } else {
        if (header) ok &= fprintf(f, "%s\n", header) >= 0;
        for (size_t i = 0; i < n && ok; i++)
            for (size_t j = 0; j < d && ok; j++) ok &= fprintf(f, "%.9g%c", x[i * d + j], j + 1 < d ? ',' : '\n') >= 0;
    }
    s = nf__out_close(&o, ok);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

/* In the C locale whatever the host program set (core/clocale.c). */
nf_status nf_write_table(const char *path, const float *x, size_t n, size_t d, const char *header) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = write_impl(path, x, n, d, header, 0);
    nf__clocale_leave(&loc);
    return r;
}

nf_status nf_write_vector(const char *path, const float *x, size_t n, const char *header) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = write_impl(path, x, n, 1, header, 1);
    nf__clocale_leave(&loc);
    return r;
}
