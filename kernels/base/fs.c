/* kernels/base/fs.c: see fs.h */
#include "kernels/base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/base/err.h"
#include "kernels/base/mem.h"
#include "kernels/base/strbuf.h"

/* ===== whole-file inputs ===== */

static size_t input_cap(void) {
    const char *e = getenv("LOWBIT_MAX_INPUT_MB");
    char *end;
    double mb = e && *e ? strtod(e, &end) : 1024;
    if (e && *e && (end == e || *end || !(mb > 0) || mb > 1e9)) mb = 1024;
    return (size_t)(mb * 1048576.0);
}

/* size: the file's, or (more) a lower bound of a stream's */
static int too_big(const char *path, const char *what, size_t size, bool more) {
    const size_t cap = input_cap();
    if (size > cap)
        return err("%s %s is %s%.1f MiB; lowbit reads such files whole and takes at most %.0f MiB "
                   "(LOWBIT_MAX_INPUT_MB)",
                   what, path, more ? "at least " : "", (double)size / 1048576.0,
                   (double)cap / 1048576.0);
    char w[512];
    snprintf(w, sizeof w, "reading %s %s", what, path);
    return mem_check(size + 1, w);
}

int input_size_check(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return 0;
    return too_big(path, what, (size_t)st.st_size, false);
}

int read_file_all(const char *path, const char *what, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || S_ISDIR(st.st_mode)) {
        fclose(f);
        return err("%s: not a file", path);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : (size_t)1 << 16, n = 0;
    if (S_ISREG(st.st_mode) && too_big(path, what, (size_t)st.st_size, false)) {
        fclose(f);
        return -1;
    }
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return err("out of memory: %zu bytes reading %s %s", cap, what, path);
        }
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* the end, or an error */
        const int c = fgetc(f);
        if (c == EOF) break;
        /* a stream, or a file that grew: double, within the cap */
        if (too_big(path, what, n + 1, true)) {
            free(buf);
            fclose(f);
            return -1;
        }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
        if (buf) buf[n++] = (char)c;
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err("%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

/* ===== directories ===== */

int mkdir_p(const char *dir) {
    char *p = xstrdup(dir, "a directory name");
    if (!p) return -1;
    int ret = 0;
    for (char *s = p + 1;; s++) {
        const char c = *s;
        if (c == '/' || !c) {
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) {
                ret = err("%s: cannot create: %s", p, strerror(errno));
                break;
            }
            *s = c;
        }
        if (!c) break;
    }
    free(p);
    return ret;
}

int write_file_atomic(const char *path, const void *data, size_t len) {
    char *tmp = xstrfmt("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err("%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    bool ok = done == len && fsync(fd) == 0;
    int e = errno;
    if (close(fd)) ok = false;
    if (!ok || rename(tmp, path)) {
        if (ok) e = errno;
        unlink(tmp);
        free(tmp);
        return err("%s: write failed: %s", path, strerror(e));
    }
    free(tmp);
    /* the rename itself survives a crash once the directory is synced */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, (size_t)(slash - path), "a directory name") : NULL;
    int dfd = open(dir && *dir ? dir : slash ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)f;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

int rm_tree(const char *path) { return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? -1 : 0; }

/* the bytes of the files under the open directory dfd (taken over and closed) */
static long long dir_bytes(int dfd) {
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0; /* unreadable: skipped, as nftw's FTW_DNR */
    }
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW)) continue;
        if (S_ISDIR(st.st_mode)) {
            const int sub = openat(dirfd(d), e->d_name,
                                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) total += dir_bytes(sub);
        } else if (!S_ISLNK(st.st_mode)) {
            total += (long long)st.st_size;
        }
    }
    closedir(d);
    return total;
}

long long path_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) return (long long)st.st_size;
    const int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dfd < 0 ? 0 : dir_bytes(dfd); /* unreadable: nothing counted, as nftw */
}
