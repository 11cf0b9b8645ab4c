/* kernels/base/sha256.h: SHA-256 (FIPS 180-4), for the provenance hashes of task data and model
 * files, and for job keys.
 *
 *   struct sha256 h;
 *   sha256_init(&h);
 *   sha256_update(&h, buf, n);   ... as many times as needed
 *   sha256_hex(&h, hex);         64 lowercase hex digits + NUL; h is finished after this
 *
 * A straightforward, byte-oriented implementation (about 200 MB/s); no dependency. */
#ifndef KERNELS_BASE_SHA256_H
#define KERNELS_BASE_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];   /* chaining state */
    uint64_t n_bytes; /* message length so far */
    uint8_t buf[64];  /* pending partial block */
    size_t n_buf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* sha256_final, then the digest as 64 hex digits + NUL into hex */
void sha256_hex(struct sha256 *s, char hex[65]);
/* the whole of the file at path into s (read in 64 KiB pieces, never held whole); -1 with "PATH:
 * cannot open: REASON" or "PATH: read error: REASON" (s then holds part of the file) */
int sha256_update_file(struct sha256 *s, const char *path);
/* one-shot: the hex digest of n bytes at data / of the file at path (-1 as sha256_update_file) */
void sha256_hex_of(const void *data, size_t n, char hex[65]);
int sha256_file_hex(const char *path, char hex[65]);
#endif
