/*
 * output.h - writing an output file without destroying anything by
 * surprise (every writer of the library uses it: tables, model files,
 * checkpoints, nf_write_file).
 *   "-"                      standard output
 *   a character device, FIFO or socket (also through a symlink; /dev/stdout,
 *   /dev/fd/N)               written directly, in place
 *   a regular file or a new path (a symlink: its target)
 *                            written to a unique temporary beside it (O_EXCL,
 *                            the original's mode kept, a new file's from the
 *                            umask), flushed, fsynced and renamed over it: a
 *                            failed write leaves the original as it was
 *   a directory              refused
 * Every write, flush, sync and close is checked; failures are NF_ERR_IO with
 * the path and the OS's reason.
 */
#ifndef NF_OUTPUT_H
#define NF_OUTPUT_H

#include "../core/core.h"

#include <stdio.h>

typedef struct nf_out {
    FILE *fp;
    int atomic;      /* 1: fp writes tmp, renamed over path at the end */
    int is_stdout;
    char path[4096]; /* where the result goes (a symlink's target) */
    char tmp[4200];
} nf_out;

/* Opens `path` for writing as above ("wb"). */
nf_status nf__out_open(nf_out *o, const char *path);
/* Finishes: flush, sync, close and (atomic) rename; on any failure the
 * temporary is removed and NF_ERR_IO says why.  `ok` = 0: a write already
 * failed (its errno is still set): the output is abandoned. */
nf_status nf__out_close(nf_out *o, int ok);

#endif
