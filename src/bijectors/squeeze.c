/*
 * squeeze.c - Real NVP's squeeze (space-to-depth) as a permutation: a
 * C x H x W image (H, W even) becomes a 4C x H/2 x W/2 one, channel
 * 4c + 2 dy + dx holding the pixels (2y + dy, 2x + dx) of channel c.
 * Direction, as TFP's: the data side is the C x H x W image, so the inverse
 * (data -> base) squeezes and the forward (base -> data) unsqueezes.
 * Volume preserving; the permutation is stored in model files as permute's.
 */
#include "bijector_impl.h"

#include <stdlib.h>

nf_status nf_bijector_squeeze(const size_t shape[3], nf_bijector **out) {
    const char *fn = "nf_bijector_squeeze";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!shape) return nf__err(NF_ERR_ARG, "%s: shape is NULL", fn);
    size_t C = shape[0], H = shape[1], W = shape[2];
    if (!C || !H || !W || H % 2 || W % 2 || C > (1u << 20) || H > (1u << 16) || W > (1u << 16))
        return nf__err(NF_ERR_SHAPE, "%s: a C x H x W image with even H and W, got %zu x %zu x %zu", fn, C, H, W);
    size_t d = C * H * W, h = H / 2, w = W / 2;
    size_t *perm = malloc(d * sizeof(size_t));
    if (!perm) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    /* forward: y (data side, C x H x W) gathers from x (4C x H/2 x W/2): y_j = x_perm[j] */
    for (size_t c = 0; c < C; c++)
        for (size_t y = 0; y < H; y++)
            for (size_t x = 0; x < W; x++)
                perm[(c * H + y) * W + x] = ((4 * c + 2 * (y % 2) + x % 2) * h + y / 2) * w + x / 2;
    nf_status s = nf_bijector_permute(d, perm, out);
    free(perm);
    if (s) return nf__err_prefix(s, fn);
    (*out)->name = "squeeze";
    return NF_OK;
}
