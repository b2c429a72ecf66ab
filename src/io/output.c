/*
 * output.c - output files that never destroy what is there (output.h).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static nf_status io_err(const char *path, const char *what, int e) {
    return nf__err(NF_ERR_IO, "cannot %s %s: %s", what, path, strerror(e));
}

/* Streams named by path: /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N. */
static int is_stream_name(const char *path) {
    return !strncmp(path, "/dev/std", 8) || !strncmp(path, "/dev/fd/", 8) || !strncmp(path, "/proc/self/fd/", 14);
}

/* The temporary beside o->path: created with O_EXCL (a unique name: the
 * process, this call's address and a counter), mode 0666 less the umask or
 * the original's mode. */
static nf_status open_tmp(nf_out *o, const struct stat *orig) {
    int fd = -1;
    for (unsigned k = 0; fd < 0 && k < 100; k++) {
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld.%lx.%u", o->path, (long)getpid(), (unsigned long)(uintptr_t)o, k);
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        int wfd = open(o->path, O_WRONLY | O_CLOEXEC); /* is the file itself writable?  (changes nothing) */
        int e2 = errno;
        if (wfd >= 0) close(wfd);
        if (orig && wfd < 0) return io_err(o->path, "write", e2);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", o->path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        const char *folder = slash ? (dir[0] ? dir : "/") : ".";
        struct stat ds;
        if (stat(folder, &ds) != 0) return nf__err(NF_ERR_IO, "cannot write %s: no folder %s (%s)", o->path, folder, strerror(errno));
        return nf__err(NF_ERR_IO, "cannot write %s: cannot create a temporary file in %s: %s", o->path, folder, strerror(e));
    }
    if (orig && fchmod(fd, orig->st_mode & 07777) != 0) { /* keep the original's mode (0600 stays 0600) */
        int e = errno;
        close(fd);
        unlink(o->tmp);
        return io_err(o->path, "keep the mode of", e);
    }
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        return io_err(o->path, "write", e);
    }
    o->atomic = 1;
    return NF_OK;
}

nf_status nf__out_open(nf_out *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (!strcmp(path, "-")) {
        o->fp = stdout;
        o->is_stdout = 1;
        return NF_OK;
    }
    if (snprintf(o->path, sizeof o->path, "%s", path) >= (int)sizeof o->path)
        return nf__err(NF_ERR_ARG, "path too long: %.64s...", path);
    struct stat lst, st;
    int exists = lstat(path, &lst) == 0, target = exists && stat(path, &st) == 0;
    if (exists && S_ISLNK(lst.st_mode)) {
        char link[PATH_MAX];
        ssize_t k = readlink(path, link, sizeof link - 1);
        link[k > 0 ? k : 0] = 0;
        if (!target || is_stream_name(path) || is_stream_name(link) || !S_ISREG(st.st_mode)) {
            /* a stream, a device or a dangling link: write through it */
        } else {
            char *real = realpath(path, NULL); /* a regular file: replace the target, keep the link */
            if (!real) return io_err(path, "resolve", errno);
            snprintf(o->path, sizeof o->path, "%s", real);
            free(real);
            return open_tmp(o, &st);
        }
    } else if (target && S_ISDIR(st.st_mode)) {
        return nf__err(NF_ERR_IO, "cannot write %s: it is a directory", path);
    } else if (!exists || S_ISREG(st.st_mode)) {
        return open_tmp(o, exists ? &st : NULL);
    }
    o->fp = fopen(path, "wb"); /* devices, FIFOs, sockets, streams: in place */
    return o->fp ? NF_OK : io_err(path, "write", errno);
}

nf_status nf__out_close(nf_out *o, int ok) {
    int e = ok ? 0 : errno;
    if (!o->fp) return NF_OK;
    if (ok && fflush(o->fp) != 0) {
        ok = 0;
        e = errno;
    }
    if (ok && o->atomic && fsync(fileno(o->fp)) != 0) {
        ok = 0;
        e = errno;
    }
    if (o->is_stdout) {
        o->fp = NULL;
        return ok ? NF_OK : io_err("standard output", "write", e ? e : EIO);
    }
    if (fclose(o->fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    o->fp = NULL;
    if (ok && o->atomic && rename(o->tmp, o->path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok && o->atomic) unlink(o->tmp);
    return ok ? NF_OK : io_err(o->path, "write", e ? e : EIO);
}

nf_status nf_write_file(const char *path, const void *data, size_t len) {
    const char *fn = "nf_write_file";
    if (!path || (len && !data)) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    nf_out o;
    nf_status s = nf__out_open(&o, path);
    if (s) return nf__err_prefix(s, fn);
    int ok = fwrite(data, 1, len, o.fp) == len;
    s = nf__out_close(&o, ok);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}
