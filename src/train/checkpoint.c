/*
 * checkpoint.c - the whole training state in a model file: the flow's
 * tensors, Adam's moments and the best parameters as extra tensors, and the
 * loop's counters, the RNG and the histories as metadata strings.  One key
 * table drives both writing and reading.  Written atomically by the model
 * writer (temporary file, fsync, rename); a checkpoint is also a model file.
 */
#include "trainer.h"
#include "../flow/flow_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NKEYS = 9 };

/* The scalar counters, as (key, size_t field) or (key, double field). */
typedef struct ck_key {
    const char *name;
    size_t *z;
    double *d;
} ck_key;

static void key_table(ck_key k[NKEYS], nf_trainer *t, nf_loop_state *c) {
    ck_key tab[NKEYS] = {
        {"train.step", &c->step, NULL},   {"train.epoch", &c->epoch, NULL}, {"train.adam_t", &t->adam.t, NULL},
        {"train.inint", &c->cnt, NULL},   {"train.logs", &c->logs, NULL},   {"train.best_epoch", &c->best_epoch, NULL},
        {"train.since", &c->since, NULL}, {"train.acc", NULL, &c->acc},     {"train.best", NULL, &c->best},
    };
    memcpy(k, tab, sizeof tab);
}

static char *join_doubles(const double *v, size_t n) {
    char *b = malloc(n * 26 + 2);
    if (!b) return NULL;
    size_t k = 0;
    b[0] = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(b + k, 26, "%s%.17g", i ? "," : "", v[i]);
    return b;
}

static int split_doubles(const char *s, double *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *end;
        if (!s) return -1;
        v[i] = strtod(s, &end);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static nf_status nf__checkpoint_save_impl(const nf_trainer *t, const char *path, const nf_rng *rng, const nf_loop_state *c) {
    ck_key keys[NKEYS];
    key_table(keys, (nf_trainer *)t, (nf_loop_state *)c); /* read only here */
    char val[NKEYS][40], rs[160];
    for (int k = 0; k < NKEYS; k++) {
        if (keys[k].z)
            snprintf(val[k], sizeof val[k], "%zu", *keys[k].z);
        else
            snprintf(val[k], sizeof val[k], "%.17g", *keys[k].d);
    }
    uint64_t st[6];
    nf__rng_get_state(rng, st);
    snprintf(rs, sizeof rs, "%016llx %016llx %016llx %016llx %llx %016llx", (unsigned long long)st[0],
             (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3], (unsigned long long)st[4],
             (unsigned long long)st[5]);
    char *ht = join_doubles(c->htrain, c->logs), *hv = join_doubles(c->hval, c->logs);
    if (!ht || !hv) {
        free(ht);
        free(hv);
        return nf__err(NF_ERR_NOMEM, "out of memory writing a checkpoint");
    }
    const char *kv[2 * (NKEYS + 4)];
    size_t nkv = 0;
    kv[nkv++] = "train.mode";
    kv[nkv++] = c->mode;
    for (int k = 0; k < NKEYS; k++) {
        kv[nkv++] = keys[k].name;
        kv[nkv++] = val[k];
    }
    const char *more[] = {"train.rng", rs, "train.hist_train", ht, "train.hist_val", hv};
    for (size_t k = 0; k < 6; k++) kv[nkv++] = more[k];
    nf_extra_tensor xt[3] = {{"train.adam_m", t->m, t->P}, {"train.adam_v", t->v, t->P}, {"train.best", t->best, t->P}};
    nf_status s = nf__flow_save_ex(t->f, path, NULL, xt, 3, kv, nkv / 2);
    free(ht);
    free(hv);
    return s;
}

/* In the C locale whatever the host program set (core/clocale.c). */
nf_status nf__checkpoint_save(const nf_trainer *t, const char *path, const nf_rng *rng, const nf_loop_state *c) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = nf__checkpoint_save_impl(t, path, rng, c);
    nf__clocale_leave(&loc);
    return r;
}

static nf_status load_counters(const nf_st_file *m, const char *path, nf_trainer *t, nf_loop_state *c) {
    ck_key keys[NKEYS];
    key_table(keys, t, c);
    for (int k = 0; k < NKEYS; k++) {
        const char *v = nf__st_meta(m, keys[k].name);
        char *end = NULL;
        if (v && keys[k].z) {
            unsigned long long x = strtoull(v, &end, 10);
            *keys[k].z = (size_t)x;
        } else if (v) {
            *keys[k].d = strtod(v, &end);
        }
        if (!v || end == v || *end) return nf__err(NF_ERR_DOMAIN, "%s: invalid %s", path, keys[k].name);
    }
    return NF_OK;
}

static nf_status load_rng(const nf_st_file *m, const char *path, nf_rng *rng) {
    const char *rs = nf__st_meta(m, "train.rng");
    unsigned long long u[6];
    uint64_t st[6];
    if (!rs || sscanf(rs, "%llx %llx %llx %llx %llx %llx", &u[0], &u[1], &u[2], &u[3], &u[4], &u[5]) != 6)
        return nf__err(NF_ERR_DOMAIN, "%s: invalid train.rng", path);
    for (int k = 0; k < 6; k++) st[k] = u[k];
    if (nf__rng_set_state(rng, st)) return nf__err(NF_ERR_DOMAIN, "%s: invalid train.rng", path);
    return NF_OK;
}

static nf_status load_all(const nf_st_file *m, const char *path, nf_trainer *t, nf_rng *rng, nf_loop_state *c,
                          size_t hist_cap) {
    const char *mode = nf__st_meta(m, "train.mode"), *spec = nf__st_meta(m, "spec");
    if (!mode || strcmp(mode, c->mode))
        return nf__err(NF_ERR_DOMAIN, "%s: not a checkpoint of %s training (it is of %s)", path, c->mode,
                       mode ? mode : "none");
    if ((t->f->spec || spec) && (!t->f->spec || !spec || strcmp(spec, t->f->spec))) /* both NULL: built by hand */
        return nf__err(NF_ERR_DOMAIN, "%s: the checkpoint is of another flow (spec %s)", path, spec ? spec : "none");
    NF_TRY(nf__flow_load_tensors(m, t->f));
    NF_TRY(nf__st_read_floats(m, "train.adam_m", t->m, t->P));
    NF_TRY(nf__st_read_floats(m, "train.adam_v", t->v, t->P));
    NF_TRY(nf__st_read_floats(m, "train.best", t->best, t->P));
    NF_TRY(load_rng(m, path, rng));
    NF_TRY(load_counters(m, path, t, c));
    if (!strcmp(c->mode, "epochs") && c->logs == 0) c->logs = c->epoch; /* written before train.logs counted epochs */
    if (c->logs > hist_cap || split_doubles(nf__st_meta(m, "train.hist_train"), c->htrain, c->logs) ||
        split_doubles(nf__st_meta(m, "train.hist_val"), c->hval, c->logs))
        return nf__err(NF_ERR_DOMAIN, "%s: its history does not fit this run (%zu entries)", path, c->logs);
    return NF_OK;
}

static nf_status nf__checkpoint_load_impl(nf_trainer *t, const char *path, nf_rng *rng, nf_loop_state *c, size_t hist_cap) {
    nf_st_file *m = NULL;
    NF_TRY(nf__st_open(path, "nflow model file", &m));
    nf_status s = load_all(m, path, t, rng, c, hist_cap);
    nf__st_close(m);
    return s;
}

/* In the C locale whatever the host program set (core/clocale.c). */
nf_status nf__checkpoint_load(nf_trainer *t, const char *path, nf_rng *rng, nf_loop_state *c, size_t hist_cap) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = nf__checkpoint_load_impl(t, path, rng, c, hist_cap);
    nf__clocale_leave(&loc);
    return r;
}
