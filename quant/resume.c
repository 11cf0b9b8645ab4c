/* quant/resume.c: block checkpoints of the block-wise quantizers (quant/resume.h). */
#include "quant/resume.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/aqlm.h"
#include "kernels/base/fs.h"
#include "kernels/base/sha256.h"
#include "kernels/base/strbuf.h"
#include "kernels/common.h"
#include "kernels/qint.h"
#include "quant/hf_export.h"


/* dir/name, owned (NULL: out of memory, said) */
static char *rpath(const struct qresume *r, const char *name) {
    return xstrfmt("%s/%s", r->dir, name);
}

static int state_block(const struct qresume *r, int *l_done, json_t **fields) {
    char *path = rpath(r, "state.json");
    if (!path) return -1;
    *l_done = -1;
    if (access(path, F_OK)) {
        free(path);
        return 0;
    }
    json_error_t je;
    json_t *s = json_load_file(path, 0, &je);
    const char *k = json_string_value(json_object_get(s, "key"));
    const json_t *b = json_object_get(s, "block");
    if (k && !strcmp(k, r->key) && json_is_integer(b) && json_integer_value(b) >= 0 &&
        json_integer_value(b) < INT32_MAX) {
        *l_done = (int)json_integer_value(b);
        json_t *f = json_object_get(s, "fields");
        *fields = f ? json_incref(f) : NULL;
    } else if (!r->quiet) {
        fprintf(stderr, "%s: %s is another run's (or unreadable): starting anew\n", r->method,
                path);
    }
    json_decref(s);
    free(path);
    return 0;
}

int qresume_open(struct qresume *r, const char *dir, const char *method, const char *src_path,
                 const char *key_text, int n_layers, bool quiet, int *l_done, json_t **fields) {
    memset(r, 0, sizeof *r);
    r->method = method, r->n_layers = n_layers, r->quiet = quiet;
    *l_done = -1;
    *fields = NULL;
    if (!dir) return 0;
    if (!(r->dir = xstrfmt("%s", dir))) return -1;
    struct stat sb;
    const bool ok = !stat(src_path, &sb);
    /* the code too (this binary's hash): a checkpoint of another lowbit, whose records may
     * differ, is not taken */
    char code[65];
    if (sha256_file_hex("/proc/self/exe", code)) snprintf(code, sizeof code, "unknown");
    char *txt = xstrfmt("lowbit resume 3|%s|%s|%lld|%lld.%09ld|%d layers|%s|code %s", method,
                        src_path, ok ? (long long)sb.st_size : -1LL,
                        ok ? (long long)sb.st_mtim.tv_sec : -1LL, ok ? sb.st_mtim.tv_nsec : 0L,
                        n_layers, key_text, code);
    if (!txt) return -1;
    sha256_hex_of(txt, strlen(txt), r->key);
    free(txt);
    if (state_block(r, l_done, fields)) return -1;
    if (*l_done >= n_layers) {
        err("%s resume: %s says block %d of %d is done", method, dir, *l_done + 1, n_layers);
        json_decref(*fields);
        *fields = NULL;
        qresume_remove(r);
        return -1;
    }
    if (*l_done >= 0 && !quiet)
        fprintf(stderr, "%s: resuming after block %d/%d (%s)\n", method, *l_done + 1, n_layers,
                dir);
    if (mkdir(dir, 0777) && errno != EEXIST)
        return err("%s resume: cannot create %s: %s", method, dir, strerror(errno));
    return 0;
}

int qresume_put(const struct qresume *r, const char *name, const void *p, size_t n) {
    if (!r->dir) return 0;
    char *path = rpath(r, name);
    const int rc = path ? write_file_atomic(path, p, n) : -1;
    free(path);
    return rc;
}

int qresume_get(const struct qresume *r, const char *name, void *p, size_t n) {
    char *path = rpath(r, name), *buf = NULL;
    size_t got = 0;
    if (!path || read_file_all(path, "a resume array", &buf, &got)) {
        free(path);
        return -1;
    }
    int rc = 0;
    if (got != n)
        rc = err("%s resume: %s has %zu bytes, not the %zu this run holds", r->method, path, got,
                 n);
    else
        memcpy(p, buf, n);
    free(buf);
    free(path);
    return rc;
}

int qresume_commit(const struct qresume *r, int l, const json_t *fields) {
    if (!r->dir) return 0;
    json_t *s = json_pack("{s:s, s:i, s:O?}", "key", r->key, "block", l, "fields", fields);
    char *txt = s ? json_dumps(s, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(s);
    if (!txt) return err("out of memory");
    const int rc = qresume_put(r, "state.json", txt, strlen(txt));
    free(txt);
    /* for the tests of resume: die here as kill -9 would (LOWBIT_KILL_AFTER_BLOCK=N) */
    const char *kill_after = getenv("LOWBIT_KILL_AFTER_BLOCK");
    if (!rc && kill_after && atoi(kill_after) == l + 1) raise(SIGKILL);
    return rc;
}

/* ===== a block's tensors =====
 * Per tensor of blk.L.* that is quantized or has fp32 rows: a header of int64
 *   {kind (1 quantized, 2 fp32 rows), name bytes, type, K, N, q_bits, q_group, has_perm, q_ncb,
 *    q_out_group, data bytes}
 * then the name and the data (the parametric tensor's whole storage, or N·K floats). */
enum { RB_QUANT = 1, RB_F32 = 2, RB_NH = 11 };

static bool in_block(const struct hfx_tensor *t, const char *pre, size_t n) {
    return !strncmp(t->src->name, pre, n);
}

int qresume_put_block(const struct qresume *r, int l, const struct hfx_model *hm) {
    if (!r->dir) return 0;
    char pre[32], name[40];
    const size_t np = (size_t)snprintf(pre, sizeof pre, "blk.%d.", l);
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < hm->n; i++) {
        const struct hfx_tensor *t = &hm->t[i];
        if (!in_block(t, pre, np) || (!t->quantized && !t->f32)) continue;
        const struct tensor *q = &t->q;
        const size_t bytes = t->quantized ? tensor_nbytes(q) : (size_t)(t->N * t->K) * 4;
        const size_t nl = strlen(t->src->name);
        const int64_t h[RB_NH] = {t->quantized ? RB_QUANT : RB_F32, (int64_t)nl, q->type, t->K,
                                  t->N, q->q_bits, q->q_group, q->q_perm != NULL, q->q_ncb,
                                  q->q_out_group, (int64_t)bytes};
        strbuf_add(&sb, h, sizeof h);
        strbuf_add(&sb, t->src->name, nl);
        strbuf_add(&sb, t->quantized ? q->data : (const void *)t->f32, bytes);
    }
    if (sb.oom) {
        strbuf_release(&sb);
        return err("out of memory: block %d's resume file", l);
    }
    snprintf(name, sizeof name, "blk-%d.q", l);
    const int rc = qresume_put(r, name, strbuf_str(&sb), sb.len);
    strbuf_release(&sb);
    return rc;
}

/* t's storage from one record (h: its header, d: its data, owned by the caller) */
static int restore_tensor(struct hfx_tensor *t, const int64_t *h, const char *d) {
    const size_t bytes = (size_t)h[10];
    void *buf = xmalloc(bytes ? bytes : 1, t->module);
    if (!buf) return -1;
    memcpy(buf, d, bytes);
    if (h[0] == RB_F32) {
        if (bytes != (size_t)(t->N * t->K) * 4) goto bad;
        free(t->f32);
        t->f32 = buf;
        return 0;
    }
    if (h[2] == DTYPE_QINT) {
        if (qint_tensor_init(&t->q, t->module, t->K, t->N, (int)h[5], h[6], h[7] != 0) ||
            qint_tensor_bytes(t->K, t->N, (int)h[5], h[6], h[7] != 0) != bytes)
            goto bad;
        t->qbuf = buf;
        qint_tensor_attach(&t->q, t->qbuf, h[7] != 0); /* writes an identity permutation */
        memcpy(buf, d, bytes);                          /* the stored one */
    } else if (h[2] == DTYPE_AQLM) {
        if (aqlm_tensor_init(&t->q, t->module, t->K, t->N, (int)h[8], (int)h[5], (int)h[6],
                             (int)h[9]) ||
            tensor_nbytes(&t->q) != bytes)
            goto bad;
        t->qbuf = buf;
        t->q.data = buf;
    } else {
        goto bad;
    }
    t->quantized = true;
    return 0;
bad:
    free(buf);
    return 1;
}

int qresume_get_block(const struct qresume *r, int l, struct hfx_model *hm) {
    char name[40];
    snprintf(name, sizeof name, "blk-%d.q", l);
    char *path = rpath(r, name), *buf = NULL;
    size_t n = 0, off = 0;
    if (!path || read_file_all(path, "a resume block", &buf, &n)) {
        free(path);
        return -1;
    }
    int ret = -1;
    while (off < n) {
        int64_t h[RB_NH];
        if (n - off < sizeof h) goto bad;
        memcpy(h, buf + off, sizeof h);
        off += sizeof h;
        if (h[1] <= 0 || h[1] >= 96 || h[10] < 0 || (uint64_t)h[1] > n - off ||
            (uint64_t)h[10] > n - off - (size_t)h[1])
            goto bad;
        char tn[96];
        memcpy(tn, buf + off, (size_t)h[1]);
        tn[h[1]] = 0;
        off += (size_t)h[1];
        const int x = hfx_find(hm, tn);
        if (x < 0 || hm->t[x].K != h[3] || hm->t[x].N != h[4] || (h[0] != RB_QUANT && h[0] != RB_F32))
            goto bad;
        const int rc = restore_tensor(&hm->t[x], h, buf + off);
        if (rc < 0) goto out;
        if (rc > 0) goto bad;
        off += (size_t)h[10];
    }
    ret = 0;
    goto out;
bad:
    err("%s resume: %s does not hold block %d's tensors as this run plans them", r->method, path,
        l);
out:
    free(buf);
    free(path);
    return ret;
}

void qresume_remove(struct qresume *r) {
    if (r->dir) rm_tree(r->dir);
}

void qresume_release(struct qresume *r) {
    free(r->dir);
    r->dir = NULL;
}
