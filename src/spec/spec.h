/*
 * spec.h - the spec language shared by the C API and the CLI:
 *
 *   spec  := call
 *   call  := NAME [ '(' [ arg { ',' arg } ] ')' ]
 *   arg   := NAME '=' value | value
 *   value := NUMBER | NAME | call | '[' [ value { ',' value } ] ']'
 *
 * e.g. "chain(maf(hidden=[16,16]), permute([1,0]), maf(hidden=[16,16]))".
 * Errors point at the column with a caret line and say what was expected.
 */
#ifndef NF_SPEC_H
#define NF_SPEC_H

#include "../core/core.h"

typedef enum { SP_NUM, SP_NAME, SP_CALL, SP_LIST } sp_kind;

typedef struct sp_node sp_node;
struct sp_node {
    sp_kind kind;
    size_t col;          /* 1-based column in the spec */
    char name[32];       /* SP_NAME, SP_CALL */
    double num;          /* SP_NUM */
    size_t n;            /* children (SP_CALL args, SP_LIST items) */
    sp_node **kids;
    char (*keys)[32];    /* SP_CALL: "" for a positional argument */
};

/* Parses `text`; on error returns NULL with the message set. */
nf_status nf__spec_parse(const char *text, sp_node **out);
void nf__spec_free(sp_node *n);
/* Formats an error at column `col` of `text` with a caret line. */
/* A flow spec's parts: a bijector spec (base NULL: the standard normal) or
 * transformed(base, bijector) with a base of dimension d.  Used by
 * nf_flow_from_spec (flow/flow_spec.c). */
nf_status nf__spec_flow_parts(const char *spec, size_t d, nf_rng *rng, int defaults, nf_dist **base, nf_bijector **bij);

/* The spec language's defaults, versioned: a model file records the version
 * its spec was built with (metadata spec_defaults), so that a spec that
 * leaves an option out means after a change of default what it meant when
 * the model was saved.
 *   1  maf(...): scale=unbounded, zero_last=0 (affine)
 *   2  maf(...): scale=tanh, zero_last=1 (iaf: 0); files without the key
 *   3  maf(...): residual=1 (nflows' residual MADE; iaf: 0)
 */
#define NF_SPEC_DEFAULTS 3
#define NF_SPEC_DEFAULTS_UNRECORDED 2
nf_status nf__spec_error(nf_status s, const char *text, size_t col, const char *fmt, ...) NF_PRINTF(4, 5);

#endif
