/* kernels/base/fs.h: files and directories: whole-file reads with their size limits, mkdir -p,
 * atomic replacement, removing and sizing a tree. No fixed-size path buffers: a path of any
 * length works or fails with the system's own error, never cut short.
 *
 * Every function returns 0 (or a count) on success and -1 with a message through err(), except
 * where it says "no message". */
#ifndef KERNELS_BASE_FS_H
#define KERNELS_BASE_FS_H
#include <stddef.h>

/* ---- whole-file inputs (texts, task files, JSON, tokenizers) ----
 * A file read whole is at most LOWBIT_MAX_INPUT_MB (default 1024) MiB and must fit mem_check():
 * a text of gigabytes is refused with its size and the knob before anything is allocated.
 * input_size_check(): 0 when path is small enough (or cannot be stat'ed: the open reports that),
 * else -1 with "WHAT PATH is N MiB; ...". read_file_all(): the whole of path (a regular file or a
 * stream such as a pipe, checked as it grows) into *data, NUL-terminated (owned, free()), its
 * length in *len; -1 with "PATH: cannot open: ...", the size refusal, or a read error. */
int input_size_check(const char *path, const char *what);
int read_file_all(const char *path, const char *what, char **data, size_t *len);

/* mkdir -p: dir and every missing parent (mode 0777 less the umask); -1 with "DIR: cannot
 * create: REASON" naming the first component that could not be made */
int mkdir_p(const char *dir);
/* write len bytes to path via a temporary file beside it (path.tmp.<pid>), fsync, rename, fsync
 * the directory: a reader sees the old file or the whole new one, never a part. -1 with "PATH:
 * write failed: REASON" (the temporary file removed) */
int write_file_atomic(const char *path, const void *data, size_t len);
/* remove path and everything under it, not following symbolic links; -1 (no message, errno set)
 * when something could not be removed */
int rm_tree(const char *path);
/* the bytes of a file, or of every file under a directory (symbolic links not followed, entries
 * that cannot be read skipped); -1 (no message) when path cannot be stat'ed */
long long path_bytes(const char *path);
#endif
