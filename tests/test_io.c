/*
 * test_io.c - CSV and NPY tables: round trips, headers and comments, and
 * hostile files (wrong widths, junk, NaN, empty, truncated, absurd shapes)
 * reported with file, line and column.
 */
#include "test.h"

#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmpdir(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

/* Writers never destroy what is there: devices, FIFOs and streams are
 * written in place, a symlink's target is replaced and the link kept, a
 * file keeps its mode, a directory is refused, and every failure is
 * NF_ERR_IO naming the path and the OS's reason; no temporary is left. */
static int count_tmp(const char *dir) {
    char cmd[600], out[64] = "0";
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c '\\.tmp\\.' ", dir);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(out, sizeof out, p)) out[0] = 0;
        pclose(p);
    }
    return atoi(out);
}

static void test_safe_outputs(void) {
    char dir[256], path[512], link[512], fifo[512];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/nflow_out_%d", t && *t ? t : "/tmp", (int)getpid());
    mkdir(dir, 0755);
    float x[4] = {0.5f, 0.25f, 1, 2};
    CHECK_ERR(nf_write_table("/dev/full", x, 2, 2, NULL), NF_ERR_IO, "cannot write /dev/full: No space left on device");
    struct stat st;
    CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode), "/dev/full is still a device");
    CHECK_ERR(nf_write_table(dir, x, 2, 2, NULL), NF_ERR_IO, "it is a directory");
    /* a symlink: its target is written, the link stays */
    snprintf(path, sizeof path, "%s/target.csv", dir);
    snprintf(link, sizeof link, "%s/link.csv", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs("old\n", f), fclose(f);
    CHECK(symlink("target.csv", link) == 0, "symlink made");
    CHECK_OK(nf_write_table(link, x, 2, 2, NULL));
    float *y = NULL;
    size_t n = 0, d = 0;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link is still a link");
    CHECK_OK(nf_read_table(path, &y, &n, &d));
    CHECK(n == 2 && d == 2 && y && y[3] == 2, "the link's target holds the table");
    free(y);
    /* a 0600 file stays 0600; a new file gets the umask's mode */
    chmod(path, 0600);
    CHECK_OK(nf_write_table(path, x, 2, 2, NULL));
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600 kept (%o)", (unsigned)(st.st_mode & 0777));
    mode_t um = umask(022);
    snprintf(path, sizeof path, "%s/new.npy", dir);
    CHECK_OK(nf_write_table(path, x, 2, 2, NULL));
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "a new file is 0644 under umask 022 (%o)",
          (unsigned)(st.st_mode & 0777));
    umask(um);
    /* a FIFO is written in place, its reader gets the rows */
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    CHECK(mkfifo(fifo, 0644) == 0, "fifo made");
    int rfd = open(fifo, O_RDONLY | O_NONBLOCK);
    CHECK_OK(nf_write_table(fifo, x, 2, 2, NULL));
    char buf[256] = {0};
    ssize_t got = rfd >= 0 ? read(rfd, buf, sizeof buf - 1) : -1;
    if (rfd >= 0) close(rfd);
    CHECK(got > 0 && strstr(buf, "0.5,0.25\n1,2\n"), "the FIFO's reader got the table (%zd bytes)", got);
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
    /* model files go the same way */
    nf_flow *fl = NULL;
    CHECK_OK(nf_flow_from_spec("maf(hidden=[4])", 2, 1, &fl));
    CHECK_ERR(nf_flow_save(fl, "/dev/full", NULL), NF_ERR_IO, "No space left on device");
    snprintf(path, sizeof path, "%s/missing/m.nflow", dir);
    CHECK_ERR(nf_flow_save(fl, path, NULL), NF_ERR_IO, "no folder");
    nf_flow_free(fl);
    CHECK(count_tmp(dir) == 0, "no temporary file left behind");
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0, "cleaned up");
}

/* Every row of `path` lies in exactly one of 1..7 parts, in order. */
static void check_parts(const char *path, const char *what) {
    float *all = NULL;
    size_t n = 0, d = 0;
    CHECK_OK(nf_read_table(path, &all, &n, &d));
    for (size_t parts = 1; parts <= 7; parts++) {
        size_t got = 0, bad = 0;
        for (size_t p = 0; p < parts; p++) {
            float *y = NULL;
            size_t k = 0, dd = 0;
            char **names = NULL;
            nf_status s = nf_read_table_part(path, p, parts, &y, &k, &dd, &names);
            if (s || dd != d || got + k > n || (k && memcmp(y, all + got * d, k * d * sizeof(float)))) bad++;
            got += k;
            free(y);
            nf_free_names(names, dd);
        }
        CHECK(!bad && got == n, "%s in %zu parts: every one of the %zu rows once, in order (%zu rows, %zu bad parts)",
              what, parts, n, got, bad);
    }
    free(all);
}

static void test_parts(void) {
    char csv[512], npy[512];
    snprintf(csv, sizeof csv, "%s/nflow_parts_%d.csv", tmpdir(), (int)getpid());
    snprintf(npy, sizeof npy, "%s/nflow_parts_%d.npy", tmpdir(), (int)getpid());
    /* lines of uneven length, a header, comments and blank lines: no part size divides evenly */
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text, "# a comment\nalpha,beta,gamma\n\n");
    for (int i = 0; i < 37; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%d,%g,%s%d\n%s", i, i * 0.001 - 3, i % 5 ? "" : "  ", i * i,
                                i % 11 == 3 ? "# between rows\n\n" : "");
    write_file(csv, text, len);
    check_parts(csv, "a CSV file");
    write_file(csv, text + 12, len - 12); /* no comment first: the header is the first line */
    check_parts(csv, "a CSV file with its header first");
    write_file(csv, "1,2\n3,4\n5,6", 11); /* no final newline */
    check_parts(csv, "a CSV file without a final newline");
    float x[23 * 3];
    for (int i = 0; i < 23 * 3; i++) x[i] = (float)i * 0.5f - 7;
    CHECK_OK(nf_write_table(npy, x, 23, 3, NULL));
    check_parts(npy, "a .npy file");
    /* names, an empty part, errors with the file's line number */
    float *y = NULL;
    size_t k = 9, d = 0;
    char **names = NULL;
    write_file(csv, text + 12, len - 12);
    CHECK_OK(nf_read_table_part(csv, 0, 200, &y, &k, &d, &names));
    CHECK(k == 0 && d == 3 && names && !strcmp(names[2], "gamma"), "a part inside the header: no rows, 3 named columns");
    free(y);
    nf_free_names(names, d);
    write_file(csv, "a,b\n1,2\n3,4\n5,6\n7,x\n", 20);
    CHECK_ERR(nf_read_table_part(csv, 1, 2, &y, &k, &d, NULL), NF_ERR_DOMAIN, "line 5, column 3: 'x' is not a number");
    CHECK_ERR(nf_read_table_part(csv, 2, 2, &y, &k, &d, NULL), NF_ERR_ARG, "part 2 of 2 does not exist");
    CHECK_ERR(nf_read_table_part("-", 0, 2, &y, &k, &d, NULL), NF_ERR_ARG, "standard input cannot be read in parts");
    unlink(csv);
    unlink(npy);
}

void test_io(void) {
    test_safe_outputs();
    test_parts();
    char csv[512], npy[512], bad[512];
    snprintf(csv, sizeof csv, "%s/nflow_test_%d.csv", tmpdir(), (int)getpid());
    snprintf(npy, sizeof npy, "%s/nflow_test_%d.npy", tmpdir(), (int)getpid());
    snprintf(bad, sizeof bad, "%s/nflow_test_bad_%d.csv", tmpdir(), (int)getpid());
    float x[6] = {1.5f, -2, 3.25e-7f, 4, 1e30f, -0.125f}, *y = NULL;
    size_t n, d;
    CHECK_OK(nf_write_table(csv, x, 3, 2, "a,b"));
    CHECK_OK(nf_read_table(csv, &y, &n, &d));
    CHECK(n == 3 && d == 2 && y && !memcmp(x, y, sizeof x), "CSV round trip is exact (%zu x %zu)", n, d);
    free(y);
    CHECK_OK(nf_write_table(npy, x, 2, 3, NULL));
    CHECK_OK(nf_read_table(npy, &y, &n, &d));
    CHECK(n == 2 && d == 3 && y && !memcmp(x, y, sizeof x), "NPY round trip is exact");
    free(y);

    /* comments, blank lines, whitespace separators, a header */
    const char *ok = "# points\nx y\n\n 1 2  # first\n3\t4\n";
    write_file(bad, ok, strlen(ok));
    CHECK_OK(nf_read_table(bad, &y, &n, &d));
    CHECK(n == 2 && d == 2 && y && y[2] == 3 && y[3] == 4, "header, comments and whitespace");
    free(y);

    struct {
        const char *text, *needle;
        nf_status code;
    } cases[] = {
        {"1,2\n3,4,5\n", "line 2 has 3 columns, expected 2", NF_ERR_SHAPE},
        {"1,2\n3,abc\n", "line 2, column 3: 'abc' is not a number", NF_ERR_DOMAIN},
        {"1,2\nnan,4\n", "line 2, column 1: value nan is not a finite float", NF_ERR_DOMAIN},
        {"1,inf\n", "not a finite float", NF_ERR_DOMAIN},
        {"1,1e40\n", "overflows float", NF_ERR_DOMAIN},
        {"# nothing\n\n", "no data rows", NF_ERR_SHAPE},
        {"", "no data rows", NF_ERR_SHAPE},
        {"1,2,\n", "trailing comma", NF_ERR_DOMAIN},
        /* a first data row with a typo, or NA, is an error, never taken for a header */
        {"1.0,2.O\n3,4\n", "line 1, column 5: '2.O' is not a number (field 2)", NF_ERR_DOMAIN},
        {"NA,2\n3,4\n", "line 1, column 1: 'NA' is not a number (field 1)", NF_ERR_DOMAIN},
        {"a,b\n1.0,,2.0\n", "line 2, column 5: an empty field (field 2)", NF_ERR_DOMAIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(bad, cases[i].text, strlen(cases[i].text));
        y = NULL;
        nf_status s = nf_read_table(bad, &y, &n, &d);
        CHECK(s == cases[i].code && strstr(nf_last_error(), cases[i].needle) && strstr(nf_last_error(), bad),
              "CSV case %zu: got %s: %s", i, nf_status_str(s), nf_last_error());
        CHECK(y == NULL, "no data on failure");
    }

    /* header names */
    const char *named = "x, y ,label\n1,2,0\n3,4,1\n";
    write_file(bad, named, strlen(named));
    char **names = NULL;
    CHECK_OK(nf_read_table_names(bad, &y, &n, &d, &names));
    CHECK(n == 2 && d == 3 && names && !strcmp(names[0], "x") && !strcmp(names[1], "y") && !strcmp(names[2], "label"),
          "header names read");
    nf_free_names(names, d);
    free(y);
    const char *short_h = "x,y\n1,2,0\n";
    write_file(bad, short_h, strlen(short_h));
    CHECK_ERR(nf_read_table_names(bad, &y, &n, &d, &names), NF_ERR_SHAPE, "the header names 2 columns, the data have 3");

    /* hostile .npy files */
    snprintf(bad, sizeof bad, "%s/nflow_test_bad_%d.npy", tmpdir(), (int)getpid());
    unsigned char hdr[128] = "\x93NUMPY\x01\x00";
    const char *dict[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 2), }",
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
    };
    const char *needle[] = {"truncated", "dtype", "Fortran", "truncated"};
    for (int k = 0; k < 4; k++) {
        size_t len = strlen(dict[k]);
        hdr[8] = (unsigned char)len, hdr[9] = 0;
        memcpy(hdr + 10, dict[k], len);
        float two[2] = {1, 2}; /* too few bytes for 2 x 2 */
        memcpy(hdr + 10 + len, two, sizeof two);
        write_file(bad, hdr, 10 + len + sizeof two);
        nf_status s = nf_read_table(bad, &y, &n, &d);
        CHECK(s == NF_ERR_DOMAIN && strstr(nf_last_error(), needle[k]), "NPY case %d: %s", k, nf_last_error());
    }
    write_file(bad, "\x93NUMPX", 6);
    CHECK_ERR(nf_read_table(bad, &y, &n, &d), NF_ERR_DOMAIN, "shorter than a header");
    /* float64 with the right size reads */
    {
        const char *h8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
        size_t len = strlen(h8);
        unsigned char buf[200] = "\x93NUMPY\x01\x00";
        buf[8] = (unsigned char)len;
        memcpy(buf + 10, h8, len);
        double v[3] = {0.5, -1, 2e-3};
        memcpy(buf + 10 + len, v, sizeof v);
        write_file(bad, buf, 10 + len + sizeof v);
        CHECK_OK(nf_read_table(bad, &y, &n, &d));
        CHECK(n == 3 && d == 1 && y && y[1] == -1 && y[2] == 2e-3f, "float64 (n,) reads as n x 1");
        free(y);
    }
    CHECK_ERR(nf_read_table("/nonexistent/x.csv", &y, &n, &d), NF_ERR_IO, "cannot open");
    /* I/O failures have their own code, with the OS's reason */
    float one[2] = {1, 2};
    CHECK_ERR(nf_write_table("/nonexistent/dir/x.csv", one, 1, 2, NULL), NF_ERR_IO, "No such file or directory");
    nf_flow *fl = NULL;
    CHECK_ERR(nf_flow_load("/nonexistent/m.nflow", &fl), NF_ERR_IO, "cannot open /nonexistent/m.nflow");
    CHECK_OK(nf_flow_from_spec("maf(hidden=[4])", 2, 1, &fl));
    CHECK_ERR(nf_flow_save(fl, "/nonexistent/dir/m.nflow", NULL), NF_ERR_IO, "no folder /nonexistent/dir");
    nf_flow_free(fl);
    CHECK(!strcmp(nf_status_str(NF_ERR_IO), "input/output error"), "NF_ERR_IO has a name");
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", NF_VERSION_MAJOR, NF_VERSION_MINOR, NF_VERSION_PATCH);
    CHECK(!strcmp(nf_version(), ver), "nf_version() %s comes from the version macros (%s)", nf_version(), ver);
    remove(csv), remove(npy), remove(bad);
}
