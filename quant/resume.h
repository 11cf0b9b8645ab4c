/* quant/resume.h: a block-wise quantizer's checkpoint, so that a long job survives kill -9.
 *
 * GPTQ, AWQ, AQLM and AutoRound quantize a model block by block (quant/calib.h). After block l
 * each writes, in its resume directory (the job's directory + ".resume", which a job's attempts
 * do not empty):
 *     blk-L.q      block l's finished tensors (qresume_put_block): per tensor of blk.L.* its
 *                  quantized storage (the whole parametric tensor: codes, side data, permutation)
 *                  or, for a float tensor the method changed (AWQ's folded norms), its fp32 rows
 *     NAME         the method's arrays (qresume_put): the calibration stream at block l+1, ...
 *     state.json   {"key": K, "block": l, "fields": {...}}, written last (atomically): the commit
 * A re-run with the same key (the method's options, the calibration windows, the source file's
 * path, size and modification time, the hash of the lowbit binary: qresume_open) re-emits blocks 0..l from their files, reads
 * the arrays back and goes on at block l+1: the same output bytes as an uninterrupted run, since
 * every later step sees the same inputs. A state of another run is not taken (one line, then
 * the run starts anew); a damaged one is an error and removed, so the next attempt starts anew.
 * Every file goes through write_file_atomic: a kill leaves either the old or the new state.
 * The directory is removed when the quantization completes (qresume_remove). */
#ifndef QUANT_RESUME_H
#define QUANT_RESUME_H
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct hfx_model;

struct qresume {
    char *dir;          /* owned; NULL: no checkpoints */
    const char *method; /* "gptq", ... (messages) */
    char key[65];
    int n_layers;
    bool quiet;
};

/* start (dir NULL: r is off and every call below does nothing) or continue: *l_done the last
 * finished block of a matching state (-1 when none) and *fields its method fields (owned, NULL
 * when none). key_text names everything else that decides the output. -1 with a message: a
 * state that says every block is done, or a directory that cannot be made. */
int qresume_open(struct qresume *r, const char *dir, const char *method, const char *src_path,
                 const char *key_text, int n_layers, bool quiet, int *l_done, json_t **fields);
/* block l's tensors of hm (every hfx tensor named blk.L.*), as described above */
int qresume_put_block(const struct qresume *r, int l, const struct hfx_model *hm);
/* read them back into hm (quantized ones marked so, float ones with their rows); -1 with a
 * message when the file does not hold this run's block */
int qresume_get_block(const struct qresume *r, int l, struct hfx_model *hm);
/* a named array of n bytes; get: exactly n bytes or -1 with a message */
int qresume_put(const struct qresume *r, const char *name, const void *p, size_t n);
int qresume_get(const struct qresume *r, const char *name, void *p, size_t n);
/* the commit after block l (fields borrowed); with LOWBIT_KILL_AFTER_BLOCK=N the process then
 * dies by SIGKILL after block N (1-based), as kill -9 would: what the tests of resume use */
int qresume_commit(const struct qresume *r, int l, const json_t *fields);
/* the directory and everything in it (after success, or a damaged state) */
void qresume_remove(struct qresume *r);
void qresume_release(struct qresume *r);
#endif
