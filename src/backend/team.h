/*
 * team.h - the CPU backend on a team of threads (team.c): each product and
 * element-wise pass of a training step split across the threads by its
 * output's columns, for small batches (nf_train_opts.split).
 */
#ifndef NF_BACKEND_TEAM_H
#define NF_BACKEND_TEAM_H

#include "../core/backend.h"
#include "../core/core.h"

#define NF_TEAM_MAX 64

typedef struct nf_team nf_team;

/* The threads that run T parts (a team's, or the trainer's row slots):
 * min(T, the CPUs online), at least 1; T threads on fewer cores would spin
 * or wait on each other, and the parts' results never depend on it. */
size_t nf__threads_for(size_t T);

/* A team whose jobs are cut into up to T parts (2 <= T <= NF_TEAM_MAX), run
 * by W threads, the caller the first (W = 0: min(T, the CPUs online)); the
 * results depend on T only. */
nf_status nf__team_create(size_t T, size_t W, nf_team **out);
void nf__team_free(nf_team *t);
/* The team's backend: calls must come from the thread that uses the team, one at a time. */
const nf_backend *nf__team_backend(const nf_team *t);

#endif
