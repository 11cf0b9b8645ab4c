/* gen/cli.h: the subcommands of the lowbit binary and the helpers they share. */
#ifndef GEN_CLI_H
#define GEN_CLI_H
#include <stdbool.h>

#include "eval/forward.h"
#include "eval/tokenizer.h"

int cmd_info(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_nll(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* the model's tokenizer: an explicit path (tokenizer.bin, tokenizer.json, .gguf) wins; else the
 * GGUF's own vocab, the HF directory's tokenizer.json, or tokenizer.bin beside a llama2.c file.
 * -1 with a message saying which file was looked for and the --tokenizer option. */
int cli_load_tokenizer(struct tokenizer **out, const struct model *m, const char *explicit_path);
/* read a whole file into owned memory (NUL-terminated); -1 with a message */
int cli_read_file(const char *path, char **data, size_t *len);
/* stderr progress line when stderr is a terminal and not quiet: "label: done/total (rate/s, ETA)" */
void cli_progress(const char *label, long done, long total, double t0, bool quiet);
#endif
