/* eval/safetensors_shard.c: a writer's tensors as a Hugging Face model directory, in one file or
 * in shards (see safetensors.h, safetensors_writer_write_dir).
 *
 * The rule is huggingface_hub's split_state_dict_into_shards_factory (what transformers'
 * save_pretrained uses): tensors in state-dict order (here: the order they were added), a tensor
 * larger than the limit gets a shard of its own, otherwise a new shard starts when the next tensor
 * would push the current one past the limit. One shard is model.safetensors; N shards are
 * model-0000i-of-0000N.safetensors plus model.safetensors.index.json
 * {"metadata": {"total_size": bytes of every tensor}, "weight_map": {tensor: file}}, keys sorted,
 * indented by 2, as transformers writes it. Each shard is written atomically (safetensors_writer_
 * write), the index last; weights files of an earlier layout in the directory are removed first so
 * a reader never sees two. */
#include "eval/safetensors.h"

#include "kernels/common.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#define INDEX_NAME "model.safetensors.index.json"

int64_t safetensors_max_shard_bytes(void) {
    const char *v = getenv("LOWBIT_MAX_SHARD_SIZE");
    if (!v || !*v) return SAFETENSORS_DEFAULT_SHARD_BYTES;
    char *end;
    errno = 0;
    const double x = strtod(v, &end);
    double mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "B")) mul = 1;
    else if (!strcmp(end, "KB")) mul = 1e3;
    else if (!strcmp(end, "MB")) mul = 1e6;
    else if (!strcmp(end, "GB")) mul = 1e9;
    else if (!strcmp(end, "KiB")) mul = 1024.0;
    else if (!strcmp(end, "MiB")) mul = 1024.0 * 1024;
    else if (!strcmp(end, "GiB")) mul = 1024.0 * 1024 * 1024;
    else mul = -1;
    if (errno || end == v || mul < 0 || !(x * mul >= 1) || x * mul > 9e18)
        return err("LOWBIT_MAX_SHARD_SIZE=%s: expected a size in bytes, optionally with KB, MB, GB "
                   "(10^3..10^9) or KiB, MiB, GiB", v);
    return (int64_t)(x * mul);
}

/* dir/name, or NULL (with a message) */
static char *path_in(const char *dir, const char *name) {
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n, "a path");
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* model.safetensors, model-*-of-*.safetensors and the index in dir, removed (absent is fine) */
static int remove_weights(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int ret = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        unsigned a, b;
        char tail[32];
        const bool shard = sscanf(n, "model-%5u-of-%5u.%31s", &a, &b, tail) == 3 &&
                           !strcmp(tail, "safetensors");
        if (!shard && strcmp(n, "model.safetensors") && strcmp(n, INDEX_NAME)) continue;
        char *p = path_in(dir, n);
        if (!p || (unlink(p) && errno != ENOENT)) {
            if (p) err("cannot remove %s: %s", p, strerror(errno));
            ret = -1;
        }
        free(p);
        if (ret) break;
    }
    closedir(d);
    return ret;
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) ? 0 : (int64_t)sb.st_size;
}

int safetensors_writer_write_dir(const struct safetensors_writer *w, const char *dir,
                                 int64_t max_shard_bytes, int64_t *file_bytes) {
    *file_bytes = 0;
    if (max_shard_bytes <= 0) return err("%s: a shard limit of %lld bytes", dir,
                                         (long long)max_shard_bytes);
    /* the plan: shard of each tensor */
    int *shard = xcalloc((size_t)w->n_tensors + 1, sizeof *shard, "the shard plan");
    if (!shard) return -1;
    /* shard ids in the order huggingface_hub appends shards: a large tensor's at once, the open
     * shard's when it closes (-1: in the open shard) */
    int n_shards = 0;
    int64_t cur = 0, total = 0;
    bool open = false;
    for (int i = 0; i <= w->n_tensors; i++) {
        const int64_t n = i < w->n_tensors ? (int64_t)w->tensors[i].nbytes : 0;
        if (i < w->n_tensors && n > max_shard_bytes) {
            total += n;
            shard[i] = n_shards++;
            continue;
        }
        if (open && (i == w->n_tensors || cur + n > max_shard_bytes)) {
            for (int j = 0; j < i; j++)
                if (shard[j] < 0) shard[j] = n_shards;
            n_shards++;
            open = false;
            cur = 0;
        }
        if (i == w->n_tensors) break;
        total += n;
        shard[i] = -1;
        open = true;
        cur += n;
    }
    if (!n_shards) n_shards = 1;
    int ret = -1;
    struct safetensors_writer sub = SAFETENSORS_WRITER_INIT;
    json_t *index = NULL, *map = NULL;
    char *path = NULL;
    if (remove_weights(dir)) goto out;
    if (n_shards == 1) {
        if (!(path = path_in(dir, "model.safetensors")) || safetensors_writer_write(w, path))
            goto out;
        *file_bytes = file_size(path);
        ret = 0;
        goto out;
    }
    /* each shard: a view of w holding its tensors (borrowed: sub is never released) */
    sub = *w;
    if (!(sub.tensors = xmalloc((size_t)w->n_tensors * sizeof *sub.tensors, "a shard")))
        goto out;
    map = json_object();
    index = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total,
                      "weight_map", map);
    if (!map || !index) {
        err("out of memory");
        goto out;
    }
    for (int s = 0; s < n_shards; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        sub.n_tensors = 0;
        for (int i = 0; i < w->n_tensors; i++)
            if (shard[i] == s) {
                sub.tensors[sub.n_tensors++] = w->tensors[i];
                json_object_set_new(json_object_get(index, "weight_map"), w->tensors[i].name,
                                    json_string(name));
            }
        free(path);
        if (!(path = path_in(dir, name)) || safetensors_writer_write(&sub, path)) goto out;
        *file_bytes += file_size(path);
    }
    free(path);
    if (!(path = path_in(dir, INDEX_NAME))) goto out;
    const size_t tn = strlen(path) + 5;
    char *tmp = xmalloc(tn, "a path");
    if (!tmp) goto out;
    snprintf(tmp, tn, "%s.tmp", path);
    char *txt = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    FILE *f = txt ? fopen(tmp, "wb") : NULL;
    bool ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF && !fflush(f) && !fsync(fileno(f));
    if (f && fclose(f)) ok = false;
    if (!ok || rename(tmp, path)) {
        err("cannot write %s: %s", path, txt ? strerror(errno) : "out of memory");
        unlink(tmp);
    } else {
        ret = 0;
    }
    free(txt);
    free(tmp);
out:
    if (sub.tensors != w->tensors) free(sub.tensors);
    json_decref(map);
    json_decref(index);
    free(path);
    free(shard);
    return ret;
}
