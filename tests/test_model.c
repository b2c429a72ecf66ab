/*
 * test_model.c - model files: a saved model reloads bit-identically (its
 * parameters, scaler and densities), and damaged or inconsistent files are
 * refused with a clear message.
 */
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static char path[512], path2[512];

static unsigned char *slurp(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    if (b && fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void spit(const char *p, const void *b, size_t len) {
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, len, f);
        fclose(f);
    }
}

static void roundtrip(const char *spec, size_t d, int scaler) {
    nf_flow *f = NULL, *g = NULL;
    CHECK_OK(nf_flow_from_spec(spec, d, 42, &f));
    if (!f) return;
    nf_rng *rng = NULL;
    nf_rng_create(5, &rng);
    float *p = nf_flow_params(f);
    for (size_t k = 0; k < nf_flow_param_count(f); k++) p[k] += 0.01f * nf_rng_normal(rng); /* "trained" */
    if (scaler) { /* d <= 16 */
        float m[16], sd[16];
        for (size_t j = 0; j < 16; j++) m[j] = 0.5f * (float)(j % 5) - 1, sd[j] = 0.25f + (float)(j % 3);
        CHECK_OK(nf_flow_set_scaler(f, m, sd));
    }
    CHECK_OK(nf_flow_save(f, path, "{\"steps\": 10}"));
    CHECK_OK(nf_flow_load(path, &g));
    if (g) {
        CHECK(!strcmp(nf_flow_spec(g), spec), "spec survives: %s", nf_flow_spec(g));
        CHECK(nf_flow_param_count(g) == nf_flow_param_count(f) &&
                  !memcmp(nf_flow_params(g), p, nf_flow_param_count(f) * sizeof(float)),
              "%s: parameters reload bit-identically", spec);
        float x[160], a[10], b[10], c[40]; /* 10 rows of d <= 16 */
        nf_rng_fill_normal(rng, x, 10 * d);
        nf_rng_fill_normal(rng, c, 40);
        size_t dc = nf_flow_context_dim(g);
        CHECK(dc == nf_flow_context_dim(f), "%s: context dimension survives", spec);
        CHECK_OK(nf_flow_log_prob_ctx(f, x, dc ? c : NULL, 10, a));
        CHECK_OK(nf_flow_log_prob_ctx(g, x, dc ? c : NULL, 10, b));
        CHECK(!memcmp(a, b, sizeof a), "%s: log_prob identical after reload", spec);
    }
    nf_flow_free(g);
    nf_flow_free(f);
    nf_rng_free(rng);
}

nf_status nf__flow_from_spec(const char *spec, size_t d, uint64_t seed, int defaults, nf_flow **out); /* flow/flow.h */

/* A spec that leaves an option out keeps, in a model file, the meaning it had when the file
 * was written (spec/spec.h NF_SPEC_DEFAULTS): maf(...) of defaults version 2 is a plain MADE,
 * of version 3 a residual one. */
static void spec_defaults(void) {
    const char *spec = "maf(layers=2, hidden=[6])";
    nf_flow *f = NULL, *g = NULL, *now = NULL;
    CHECK_OK(nf__flow_from_spec(spec, 3, 7, 2, &f));
    CHECK_OK(nf_flow_from_spec(spec, 3, 7, &now));
    if (!f || !now) goto done;
    CHECK(nf_flow_param_count(f) == 2 * (3 * 6 + 6 + 6 * 6 + 6) && nf_flow_param_count(now) != nf_flow_param_count(f),
          "defaults 2: a plain MADE (%zu parameters; now %zu)", nf_flow_param_count(f), nf_flow_param_count(now));
    CHECK_OK(nf_flow_save(f, path, NULL));
    CHECK_OK(nf_flow_load(path, &g));
    float x[12] = {0.1f, -0.5f, 1, 2, 0, -1, 0.3f, 0.3f, 0.3f, -2, 1, 0}, a[4], b[4];
    if (g) {
        CHECK_OK(nf_flow_log_prob(f, x, 4, a));
        CHECK_OK(nf_flow_log_prob(g, x, 4, b));
        CHECK(nf_flow_param_count(g) == nf_flow_param_count(f) && !memcmp(a, b, sizeof a),
              "a version-2 file reloads as it was saved, although the default changed since");
    }
    nf_flow_free(g), g = NULL;
    size_t len;
    unsigned char *raw = slurp(path, &len);
    char *w = raw ? strstr((char *)raw + 8, "\"spec_defaults\":\"2\"") : NULL;
    CHECK(w != NULL, "the file records spec_defaults");
    if (w) {
        w[13] = 'z'; /* the key gone (renamed): a file written before the versions, read as version 2 */
        spit(path2, raw, len);
        CHECK_OK(nf_flow_load(path2, &g));
        CHECK(g && nf_flow_param_count(g) == nf_flow_param_count(f), "a file without spec_defaults reads as version 2");
        nf_flow_free(g), g = NULL;
        w[13] = 's', w[17] = '9';
        spit(path2, raw, len);
        CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_UNSUPPORTED, "defaults of version 9, newer than this nflow's");
    }
    free(raw);
done:
    nf_flow_free(f);
    nf_flow_free(now);
}

void test_model(void) {
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/nflow_model_%d.nflow", t && *t ? t : "/tmp", (int)getpid());
    snprintf(path2, sizeof path2, "%s/nflow_model_bad_%d.nflow", t && *t ? t : "/tmp", (int)getpid());
    roundtrip("realnvp(layers=2, hidden=[8,8])", 2, 0);
    roundtrip("maf(layers=2, hidden=[6], order=random)", 4, 1);
    roundtrip("maf(layers=2, hidden=[6], order=random, residual=0)", 4, 1);
    roundtrip("realnvp(layers=2, hidden=[8], residual=1)", 3, 0);
    roundtrip("glow(levels=2, steps=1, hidden=[4])", 16, 1);
    roundtrip("transformed(mvn_tril, maf(hidden=[4]))", 3, 1);
    roundtrip("transformed(independent(normal(0, 2)), maf(hidden=[4]))", 3, 0);
    roundtrip("realnvp_multiscale(shape=[1,4,4], levels=2, steps=1, hidden=[3], bins=4)", 16, 0);
    roundtrip("chain(squeeze(shape=[2,2,2]), blockwise(pixelwise(actnorm, shape=[4,1,1]), identity, sizes=[4,4]))", 8, 0);
    spec_defaults();
    roundtrip("nsf(layers=2, hidden=[8], bins=6, bound=2.5)", 3, 0);
    roundtrip("iaf(layers=2, hidden=[6], bins=4)", 2, 1);
    roundtrip("chain(nsf(layers=2, hidden=[8], bins=4, context=3), actnorm, maf(hidden=[6], context=3))", 2, 1);
    roundtrip("chain(nsf(layers=1, hidden=[8], bins=4), lu_linear, permute(random), maf(hidden=[6]))", 4, 0);
    roundtrip("chain(leaky_relu(alpha=0.2), affine(rank=2))", 2, 0);
    roundtrip("nice(layers=2, hidden=[4])", 3, 0);
    roundtrip("iaf(hidden=[5])", 2, 0);
    roundtrip("transformed(mvn_diag(loc=[1,2], scale=[1,3]), chain(shift([1,2]), permute([1,0]), scale(2)))", 2, 1);

    /* names follow PyTorch's state_dict; metadata is readable */
    nf_flow *f = NULL, *g = NULL;
    CHECK_OK(nf_flow_from_spec("chain(maf(hidden=[4]), permute([1,0]), realnvp(layers=1, hidden=[4]))", 2, 1, &f));
    CHECK_OK(nf_flow_save(f, path, NULL));
    size_t len;
    unsigned char *raw = slurp(path, &len);
    CHECK(raw != NULL, "saved file readable");
    if (!raw) return;
    raw[len] = 0;
    const char *h = (const char *)raw + 8;
    CHECK(strstr(h, "\"layers.0.made.initial_layer.weight\":{\"dtype\":\"F32\",\"shape\":[4,2]") != NULL &&
              strstr(h, "\"layers.0.made.blocks.0.linear_layers.1.bias\"") && strstr(h, "\"layers.0.made.final_layer.mask\""),
          "residual MADE weights [out, in] under nflows' names");
    CHECK(strstr(h, "\"layers.0.made.initial_layer.mask\"") != NULL, "MADE masks are stored");
    CHECK(strstr(h, "\"layers.1.permutation\"") != NULL, "permutations are stored");
    CHECK(strstr(h, "\"layers.2.s_net.2.bias\"") != NULL, "coupling nets as nn.Sequential indices");
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)raw[k] << (8 * k);
    CHECK(hl % 8 == 0 && 8 + hl <= len, "header length %llu is padded to 8", (unsigned long long)hl);
    char *v = NULL;
    CHECK_OK(nf_model_metadata(path, "format", &v));
    CHECK(v && !strcmp(v, "nflow"), "metadata format");
    free(v);

    /* damaged files */
    spit(path2, raw, len - 4);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "inconsistent with its shape or the file's");
    spit(path2, raw, 5);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "shorter than the 8-byte header length");
    unsigned char *mod = malloc(len);
    memcpy(mod, raw, len);
    mod[6] = 0x7f; /* absurd header length */
    spit(path2, mod, len);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "does not fit");
    memcpy(mod, raw, len);
    char *w = strstr((char *)mod + 8, "hidden=[4]");
    if (w) w[8] = '5'; /* the spec now asks for width 5: shapes disagree */
    spit(path2, mod, len);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "shape entry");
    memcpy(mod, raw, len);
    w = strstr((char *)mod + 8, "\"dtype\":");
    if (w) w[7] = ';'; /* broken JSON */
    spit(path2, mod, len);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "malformed");
    memcpy(mod, raw, len);
    w = strstr((char *)mod + 8, "\"build_seed\":\"1\"");
    if (w) w[14] = '2'; /* another seed: MADE masks stay (natural order), weights load */
    spit(path2, mod, len);
    CHECK_OK(nf_flow_load(path2, &g));
    nf_flow_free(g);
    g = NULL;
    spit(path2, "not a model at all, just text", 29);
    CHECK_ERR(nf_flow_load(path2, &g), NF_ERR_DOMAIN, "not a valid nflow model file");
    CHECK(g == NULL, "no flow from a bad file");
    free(mod);
    free(raw);
    nf_flow_free(f);

    /* a random-order MADE rebuilt with another seed has other masks */
    CHECK_OK(nf_flow_from_spec("maf(hidden=[6], order=random)", 5, 3, &f));
    CHECK_OK(nf_flow_save(f, path, NULL));
    raw = slurp(path, &len);
    if (raw) {
        w = strstr((char *)raw + 8, "\"build_seed\":\"3\"");
        if (w) w[14] = '4';
        spit(path2, raw, len);
        nf_status s = nf_flow_load(path2, &g);
        CHECK(s == NF_ERR_DOMAIN && strstr(nf_last_error(), "differs from the one its spec and seed build"),
              "changed seed: %s", nf_last_error());
        free(raw);
    }
    nf_flow_free(f);

    /* flows built with the C constructors (the README's recipe): saved, and loaded into the same
     * flow built again; nf_flow_load says how */
    nf_flow *built[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        nf_rng *br = NULL;
        nf_rng_create(10 + (uint64_t)k, &br); /* other initial weights in each */
        nf_coupling_opts co = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_LEAKY_RELU},
                               .separate_nets = 1, .tanh_scale = 1};
        nf_bijector *rb = NULL;
        CHECK_OK(nf_bijector_realnvp(2, 4, &co, br, &rb));
        CHECK_OK(nf_flow_create(rb, NULL, &built[k]));
        nf_rng_free(br);
    }
    float mu[2] = {0.5f, -1}, sd[2] = {2, 0.5f};
    CHECK_OK(nf_flow_set_scaler(built[0], mu, sd));
    CHECK_OK(nf_flow_save(built[0], path, NULL));
    nf_flow *nospec = NULL;
    CHECK_ERR(nf_flow_load(path, &nospec), NF_ERR_UNSUPPORTED, "nf_flow_load_params");
    CHECK_OK(nf_flow_load_params(built[1], path));
    float px[6] = {0.1f, 0.2f, -1, 2, 3, -0.5f}, pa[3], pb[3];
    CHECK_OK(nf_flow_log_prob(built[0], px, 3, pa));
    CHECK_OK(nf_flow_log_prob(built[1], px, 3, pb));
    CHECK(!memcmp(pa, pb, sizeof pa), "a hand-built RealNVP saved and loaded into its twin gives the same log_prob");
    nf_flow *other = NULL;
    CHECK_OK(nf_flow_from_spec("maf(hidden=[7])", 2, 1, &other));
    float *before = malloc(nf_flow_param_count(other) * sizeof(float));
    memcpy(before, nf_flow_params(other), nf_flow_param_count(other) * sizeof(float));
    CHECK_ERR(nf_flow_load_params(other, path), NF_ERR_DOMAIN, "missing");
    CHECK(!memcmp(before, nf_flow_params(other), nf_flow_param_count(other) * sizeof(float)),
          "a failed load leaves the parameters as they were");
    free(before);
    nf_flow_free(other);
    /* column names travel with the model (UTF-8, quotes and commas too) */
    const char *cn[2] = {"radius \"r\", mm", "\xc3\xa9paisseur"};
    CHECK_OK(nf_flow_set_column_names(built[0], cn));
    CHECK_OK(nf_flow_save(built[0], path, NULL));
    nf_flow *named = NULL;
    CHECK_OK(nf_flow_from_spec("maf(hidden=[4])", 2, 1, &named));
    CHECK_OK(nf_flow_set_column_names(named, cn));
    CHECK_OK(nf_flow_save(named, path2, NULL));
    nf_flow_free(named);
    named = NULL;
    CHECK_OK(nf_flow_load(path2, &named));
    CHECK(named && nf_flow_column_name(named, 0) && !strcmp(nf_flow_column_name(named, 0), cn[0]) &&
              !strcmp(nf_flow_column_name(named, 1), cn[1]) && !nf_flow_column_name(named, 2),
          "column names saved and loaded: %s", named && nf_flow_column_name(named, 0) ? nf_flow_column_name(named, 0) : "(none)");
    nf_flow_free(named);
    nf_flow_free(built[0]);
    nf_flow_free(built[1]);
    remove(path), remove(path2);
}
