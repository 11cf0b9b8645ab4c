/* tests/ggml_oracle.c: ggml's own quantizer and dequantizer for one tensor, the reference the
 * i-quant and ternary tests compare lowbit against byte for byte. Not part of lowbit and not
 * built by `make`: tests/ggml_oracle.sh links it against the prebuilt libggml-base.so of
 * @node-llama-cpp/linux-x64 3.22.1 (llama.cpp de3ff81), with ggml.h from the source bundle that
 * package ships.
 *
 *   ggml_oracle TYPE N_ROWS N_PER_ROW IN.f32 IMATRIX.f32|- OUT.q OUT.f32
 *
 * TYPE is the GGML type id; IN holds N_ROWS·N_PER_ROW little-endian floats, IMATRIX N_PER_ROW
 * (or "-" for none). OUT.q gets ggml_quantize_chunk's bytes, OUT.f32 their dequantization by
 * the type's to_float. Exit 0 on success, 1 with a message otherwise (ggml aborts on a missing
 * imatrix for the types that need one; so do we, before calling it). */
#include <stdio.h>
#include <stdlib.h>

#include "ggml.h"

static void *slurp(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *p = malloc(want ? want : 1);
    const size_t got = p ? fread(p, 1, want, f) : 0;
    fclose(f);
    if (got != want) {
        free(p);
        return NULL;
    }
    return p;
}

static int spill(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const size_t put = fwrite(p, 1, n, f);
    return fclose(f) || put != n ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: ggml_oracle TYPE N_ROWS N_PER_ROW IN.f32 IMATRIX.f32|- OUT.q "
                        "OUT.f32\n");
        return 1;
    }
    const enum ggml_type t = (enum ggml_type)atoi(argv[1]);
    const long long nr = atoll(argv[2]), nc = atoll(argv[3]);
    if (nr <= 0 || nc <= 0 || nc % ggml_blck_size(t)) {
        fprintf(stderr, "ggml_oracle: bad shape %lld x %lld for %s\n", nr, nc, ggml_type_name(t));
        return 1;
    }
    float *x = slurp(argv[4], sizeof(float) * (size_t)(nr * nc));
    float *im = argv[5][0] == '-' ? NULL : slurp(argv[5], sizeof(float) * (size_t)nc);
    if (!x || (argv[5][0] != '-' && !im)) {
        fprintf(stderr, "ggml_oracle: cannot read the input files\n");
        return 1;
    }
    if (ggml_quantize_requires_imatrix(t) && !im) {
        fprintf(stderr, "ggml_oracle: %s requires an importance matrix\n", ggml_type_name(t));
        return 1;
    }
    const size_t rb = ggml_row_size(t, nc);
    void *q = malloc(rb * (size_t)nr);
    float *y = malloc(sizeof(float) * (size_t)(nr * nc));
    ggml_quantize_init(t);
    const size_t n = ggml_quantize_chunk(t, x, q, 0, nr, nc, im);
    ggml_get_type_traits(t)->to_float(q, y, nr * nc);
    if (n != rb * (size_t)nr || spill(argv[6], q, n) ||
        spill(argv[7], y, sizeof(float) * (size_t)(nr * nc))) {
        fprintf(stderr, "ggml_oracle: cannot write the outputs\n");
        return 1;
    }
    ggml_quantize_free();
    free(x);
    free(im);
    free(q);
    free(y);
    return 0;
}
