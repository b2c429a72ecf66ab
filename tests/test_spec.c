/*
 * test_spec.c - the spec language: the examples build what they say,
 * and malformed specs give a column, a caret and the expected thing.
 */
#include "test.h"

#include <stdlib.h>

static size_t count_of(const char *spec, size_t d) {
    nf_flow *f = NULL;
    nf_status s = nf_flow_from_spec(spec, d, 1, &f);
    CHECK(s == NF_OK, "spec %s: %s", spec, nf_last_error());
    size_t n = f ? nf_flow_param_count(f) : 0;
    nf_flow_free(f);
    return n;
}

/* The builders' one table: every name is listed in full in the
 * unknown-name messages, documented in docs/spec.md, and builds with its
 * defaults where it needs no argument. */
static void test_builder_table(void) {
    size_t nb = 0;
    nf_rng *rng = NULL;
    nf_rng_create(1, &rng);
    nf_bijector *b = NULL;
    CHECK_ERR(nf_bijector_from_spec("nosuch", 2, rng, &b), NF_ERR_ARG, "unknown bijector");
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", nf_last_error());
    FILE *fp = fopen("docs/spec.md", "r");
    char *doc = calloc(1, 1 << 16);
    if (fp && doc) fread(doc, 1, (1 << 16) - 1, fp);
    if (fp) fclose(fp);
    const nf_spec_builder_info *e;
    for (size_t k = 0; (e = nf_spec_builder(NF_SPEC_BIJECTOR, k)); k++, nb++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s", e->name);
        CHECK(strstr(msg, e->name) != NULL, "unknown-bijector message lists %s", e->name);
        CHECK(doc && strstr(doc, quoted) != NULL, "docs/spec.md documents %s", e->name);
        CHECK(e->summary && e->summary[0] && e->args, "%s has a summary and an argument list", e->name);
        if (e->positional == 0 && strcmp(e->name, "coupling")) { /* buildable from the name alone */
            size_t dd = strstr(e->summary, "image") ? 16 : 2; /* image layers: a 4 x 4 image */
            nf_status st = nf_bijector_from_spec(e->name, dd, rng, &b);
            CHECK(st == NF_OK, "%s builds with its defaults: %s", e->name, st ? nf_last_error() : "ok");
            nf_bijector_free(b);
            b = NULL;
        }
    }
    CHECK(nb >= 27, "%zu bijectors in the table", nb);
    /* TFP's negative num_masked: the last coordinates condition and pass unchanged */
    CHECK_OK(nf_bijector_from_spec("coupling(num_masked=-1, hidden=[4])", 3, rng, &b));
    if (b) {
        float *P = nf_bijector_params(b);
        for (size_t k = 0; k < nf_bijector_param_count(b); k++) P[k] = 0.3f * (float)((k % 7) - 3);
        float xin[3] = {0.2f, -0.4f, 0.9f}, yout[3];
        CHECK_OK(nf_bijector_forward(b, xin, 1, yout, NULL));
        CHECK(yout[2] == xin[2] && (yout[0] != xin[0] || yout[1] != xin[1]), "num_masked=-1 keeps the last coordinate");
        nf_bijector_free(b);
        b = NULL;
    }
    CHECK_ERR(nf_bijector_from_spec("coupling(num_masked=-3)", 3, rng, &b), NF_ERR_ARG, "num_masked=-3 needs 1..d-1");
    /* image flows: checkerboard / channel masks on convnet couplings, squeeze, pixelwise, blockwise */
    CHECK_OK(nf_bijector_from_spec("coupling(image=[1,4,4], mask=checkerboard, parity=1, hidden=[3])", 16, rng, &b));
    if (b) {
        float xin[16] = {0}, yout[16];
        float *P = nf_bijector_params(b);
        for (size_t k = 0; k < nf_bijector_param_count(b); k++) P[k] = 0.1f;
        for (int k = 0; k < 16; k++) xin[k] = 0.1f * (float)k;
        CHECK_OK(nf_bijector_forward(b, xin, 1, yout, NULL));
        int ok = 1; /* parity 1: the odd squares (y + x odd) condition and pass unchanged, the even ones move */
        for (int k = 0; k < 16; k++) ok &= ((k / 4 + k % 4) % 2 == 1) == (yout[k] == xin[k]);
        CHECK(ok, "coupling(mask=checkerboard, parity=1) keeps the odd squares");
        nf_bijector_free(b);
        b = NULL;
    }
    CHECK_ERR(nf_bijector_from_spec("coupling(mask=checkerboard)", 16, rng, &b), NF_ERR_ARG, "mask=checkerboard needs image=[C,H,W]");
    CHECK_ERR(nf_bijector_from_spec("coupling(image=[1,4,4], mask=channel)", 16, rng, &b), NF_ERR_ARG, "at least 2 channels");
    CHECK_ERR(nf_bijector_from_spec("coupling(image=[1,4,5], mask=checkerboard)", 16, rng, &b), NF_ERR_SHAPE,
              "1 x 4 x 5 = 20 values, but the data has 16");
    CHECK_ERR(nf_bijector_from_spec("squeeze(shape=[1,3,4])", 12, rng, &b), NF_ERR_SHAPE, "even height and width");
    CHECK_ERR(nf_bijector_from_spec("glow(levels=4)", 64, rng, &b), NF_ERR_SHAPE, "divisible by 16");
    CHECK_ERR(nf_bijector_from_spec("glow", 60, rng, &b), NF_ERR_ARG, "no square image");
    CHECK_ERR(nf_bijector_from_spec("glow(shape=[256,4,4], hidden=[65536])", 4096, rng, &b), NF_ERR_ARG, "more than the limit");
    CHECK_ERR(nf_bijector_from_spec("coupling(image=[1,4,4], mask=checkerboard, hidden=[60000,60000])", 16, rng, &b), NF_ERR_ARG,
              "more than the limit");
    CHECK_ERR(nf_bijector_from_spec("blockwise(exp, identity, sizes=[1,1])", 3, rng, &b), NF_ERR_SHAPE, "add up to 2, the data has 3");
    CHECK_OK(nf_bijector_from_spec("blockwise(exp, pixelwise(lu_linear, shape=[2,1,1]), sizes=[1,2])", 3, rng, &b));
    nf_bijector_free(b);
    b = NULL;
    /* glow on 1 x 8 x 8 (the square default), 2 levels of 1 step, hidden [4]: level 1 on 4 x 4 x 4: ActNorm 2 x 4,
     * LU 2*4 + 4*3, a convnet 4 -> 4 -> 2 x 4 channels of 3 x 3; level 2 on 8 x 2 x 2 alike */
    CHECK_OK(nf_bijector_from_spec("glow(levels=2, steps=1, hidden=[4])", 64, rng, &b));
    CHECK(b && nf_bijector_param_count(b) == (8 + 20 + (4 * 9 * 4 + 4) + (4 * 9 * 8 + 8)) + (16 + 72 + (8 * 9 * 4 + 4) + (4 * 9 * 16 + 16)),
          "glow parameter count: %zu", b ? nf_bijector_param_count(b) : 0);
    nf_bijector_free(b);
    b = NULL;
    /* a spec that draws nothing needs no rng; one that does draws from seed 0 without one */
    nf_dist *norng = NULL;
    CHECK_OK(nf_dist_from_spec("transformed(normal(0.5, 2), exp)", NULL, &norng));
    nf_dist_free(norng);
    CHECK_OK(nf_bijector_from_spec("maf(hidden=[4])", 2, NULL, &b));
    nf_bijector_free(b);
    b = NULL;
    nf_dist *D = NULL;
    CHECK_ERR(nf_dist_from_spec("nosuch", rng, &D), NF_ERR_ARG, "unknown distribution");
    snprintf(msg, sizeof msg, "%s", nf_last_error());
    for (size_t k = 0; (e = nf_spec_builder(NF_SPEC_DISTRIBUTION, k)); k++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s", e->name);
        CHECK(strstr(msg, e->name) != NULL, "unknown-distribution message lists %s", e->name);
        CHECK(doc && strstr(doc, quoted) != NULL, "docs/spec.md documents %s", e->name);
    }
    CHECK(nf_spec_builder(NF_SPEC_BIJECTOR, nb) == NULL && nf_spec_builder(7, 0) == NULL, "the tables end");
    /* an unknown keyword lists every known one, none cut */
    CHECK_ERR(nf_bijector_from_spec("realnvp(foo=1)", 2, rng, &b), NF_ERR_ARG, "known: layers, hidden, activation, init, "
              "zero_last, residual, separate, tanh_scale, shift_only, mask, num_masked, fraction_masked, bins, bound, context, image, parity)");
    /* the data sets' names come from the library */
    float x[8];
    CHECK_ERR(nf_data_generate("nosuch", rng, 4, 0, x, NULL), NF_ERR_ARG, "unknown data set");
    snprintf(msg, sizeof msg, "%s", nf_last_error());
    size_t nd = 0;
    for (; nf_data_name(nd); nd++) {
        CHECK(strstr(msg, nf_data_name(nd)) != NULL, "unknown-data message lists %s", nf_data_name(nd));
        CHECK_OK(nf_data_generate(nf_data_name(nd), rng, 4, 0, x, NULL));
    }
    CHECK(nd == 6, "6 generated data sets (%zu)", nd);
    free(doc);
    nf_rng_free(rng);
}

void test_spec(void) {
    test_builder_table();
    /* dataflowr RealNVP: 12 nets of 1*256+256 + 256*256+256 + 256+1 */
    CHECK(count_of("realnvp(layers=6, hidden=[256,256])", 2) == 12 * 66561, "realnvp parameter count");
    /* 5 MADEs of 2*256+256 + 256*256+256 + 256*4+4 */
    CHECK(count_of("maf(layers=5, hidden=[256,256], activation=relu, residual=0)", 2) == 5 * 67588, "maf parameter count");
    CHECK(count_of("chain(maf(hidden=[16,16], residual=0), permute([1,0]), maf(hidden=[16,16], residual=0))", 2) == 2 * 388,
          "seed 002 chain");
    /* residual (the maf default): 3*16+16 in, two blocks of 2 x (16*16+16), 16*6+6 out */
    CHECK(count_of("maf(hidden=[16,16])", 3) == 64 + 4 * 272 + 102, "residual maf parameter count");
    CHECK(count_of("realnvp(layers=1, hidden=[8], residual=1)", 2) == 2 * (1 * 8 + 8 + 2 * (64 + 8) + 8 + 1),
          "residual coupling nets");
    CHECK(count_of("lu_linear", 4) == 2 * 4 + 4 * 3, "lu_linear parameter count");
    CHECK(count_of("chain(maf(hidden=[8]), lu_linear(perm=identity), permute(random), maf(hidden=[8]))", 3) > 0,
          "lu_linear and random permutations in a chain");
    /* splines: 3K - 1 outputs per transformed coordinate */
    CHECK(count_of("nsf(layers=4, hidden=[32,32], bins=8)", 2) == 4 * (1 * 32 + 32 + 32 * 32 + 32 + 32 * 23 + 23),
          "nsf parameter count");
    CHECK(count_of("maf(hidden=[16], bins=5, residual=0)", 3) == 3 * 16 + 16 + 16 * 42 + 42, "spline maf parameter count");
    CHECK(count_of("iaf(layers=2, hidden=[8])", 3) > 0, "iaf");
    CHECK(count_of("nice(layers=4, hidden=[32,32])", 4) == 4 * (2 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2), "nice");
    CHECK(count_of("chain(leaky_relu(alpha=0.2), affine(rank=2))", 2) == 1 + 2 + 3 + 4, "seed 001 chain");
    CHECK(count_of("coupling(mask=[1,0,1], hidden=[4], separate=1, tanh_scale=1)", 3) > 0, "coupling with a mask");
    CHECK(count_of("transformed(mvn_diag(loc=[0,0], scale=[1,2]), maf(hidden=[8]))", 2) > 0, "transformed flow");
    CHECK(count_of("  EXP ", 3) == 0, "names are case-insensitive and a bare name is a call");

    /* the seed walkthrough through the spec language */
    nf_rng *rng = NULL;
    nf_rng_create(2, &rng);
    nf_dist *td = NULL;
    CHECK_OK(nf_dist_from_spec("transformed(normal(0,1), affine_scalar(shift=0, scale=2))", rng, &td));
    float z[3] = {0, 1, 2}, lp[3];
    const double want[3] = {-1.6120857, -1.7370857, -2.1120858};
    CHECK_OK(nf_dist_log_prob(td, z, 3, lp));
    for (int i = 0; i < 3; i++) CHECK_NEAR(lp[i], want[i], 1e-6, "spec-built transformed log_prob(%g)", z[i]);
    nf_dist_free(td);
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_from_spec("chain(exp, shift(1))", 1, rng, &b));
    float x = 0.5f, y;
    CHECK_OK(nf_bijector_forward(b, &x, 1, &y, NULL));
    CHECK_NEAR(y, exp(1.5), 1e-6, "chain(exp, shift(1)) applies the shift first");
    nf_bijector_free(b);

    /* errors: column, caret, what was expected */
    nf_flow *f = NULL;
    CHECK_ERR(nf_flow_from_spec("realnvp(layers=6 hidden=[256])", 2, 1, &f), NF_ERR_ARG,
              "expected ',' or ')' after an argument of realnvp(), found another character at column 18");
    CHECK(strstr(nf_last_error(), "\n                   ^") != NULL, "caret under column 18: %s", nf_last_error());
    CHECK_ERR(nf_flow_from_spec("realnvpp(layers=6)", 2, 1, &f), NF_ERR_ARG, "unknown bijector 'realnvpp' (known: identity");
    CHECK_ERR(nf_flow_from_spec("maf(hiden=[16])", 2, 1, &f), NF_ERR_ARG, "unknown argument 'hiden' of maf() (known: layers");
    CHECK_ERR(nf_flow_from_spec("maf(hidden=[100000000])", 2, 1, &f), NF_ERR_ARG, "1..65536");
    CHECK_ERR(nf_flow_from_spec("maf(hidden=1e30)", 2, 1, &f), NF_ERR_ARG, "1..65536");
    CHECK_ERR(nf_flow_from_spec("realnvp(hidden=-7)", 2, 1, &f), NF_ERR_ARG, "1..65536");
    CHECK_ERR(nf_flow_from_spec("maf(", 2, 1, &f), NF_ERR_ARG, "found the end");
    CHECK_ERR(nf_flow_from_spec("realnvp(layers=1024, hidden=[65536,65536])", 2, 1, &f), NF_ERR_ARG, "more than the limit");
    CHECK_ERR(nf_flow_from_spec("maf(layers=256, hidden=[65536,65536,65536])", 2, 1, &f), NF_ERR_ARG, "more than the limit");
    CHECK_ERR(nf_flow_from_spec("affine(rank=4096)", 1 << 20, 1, &f), NF_ERR_ARG, "more than the limit");
    CHECK_ERR(nf_flow_from_spec("maf(activation=swish)", 2, 1, &f), NF_ERR_ARG, "one of: identity, relu");
    CHECK_ERR(nf_flow_from_spec("nsf(bins=1)", 2, 1, &f), NF_ERR_ARG, "bins must be 0 (affine) or 2..128");
    CHECK_ERR(nf_flow_from_spec("maf(bins=500)", 2, 1, &f), NF_ERR_ARG, "bins");
    CHECK_ERR(nf_flow_from_spec("nsf(bound=-1)", 2, 1, &f), NF_ERR_ARG, "bound");
    CHECK_ERR(nf_flow_from_spec("nsf(separate=1)", 2, 1, &f), NF_ERR_ARG, "one network");
    CHECK_ERR(nf_flow_from_spec("permute([0,0])", 2, 1, &f), NF_ERR_ARG, "not a permutation");
    CHECK_ERR(nf_flow_from_spec("permute([0,1,2])", 2, 1, &f), NF_ERR_SHAPE, "list of 2 indices");
    CHECK_ERR(nf_flow_from_spec("realnvp()", 1, 1, &f), NF_ERR_ARG, "dimension >= 2");
    CHECK_ERR(nf_flow_from_spec("shift(1) extra", 2, 1, &f), NF_ERR_ARG, "unexpected text");
    CHECK_ERR(nf_flow_from_spec("[1,2]", 2, 1, &f), NF_ERR_ARG, "expected a name");
    CHECK_ERR(nf_dist_from_spec("gamma(1)", rng, &td), NF_ERR_ARG, "known: normal, uniform");
    CHECK_ERR(nf_dist_from_spec("normal(0, -1)", rng, &td), NF_ERR_ARG, "scale of normal() must be in");
    char deep[800] = "";
    for (int i = 0; i < 100; i++) strcat(deep, "invert(");
    CHECK_ERR(nf_flow_from_spec(deep, 2, 1, &f), NF_ERR_ARG, "nesting deeper");
    CHECK(f == NULL, "no flow on failure");
    nf_rng_free(rng);
}
