/* gen/cli.h: the subcommands of the lowbit binary and the helpers they share. */
#ifndef GEN_CLI_H
#define GEN_CLI_H
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "eval/forward.h"
#include "eval/tokenizer.h"

int cmd_info(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_nll(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_quant(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
int cmd_train(int argc, char **argv); /* gen/cmd_train.c */

/* lowbit eval --json's "config" object of a run of eval_run (gen/cmd_eval.c) */
struct eval_results;
json_t *eval_config_json(const struct eval_results *r, const struct model *m,
                         const char *model_path, const char *tok_path);
/* the model's tokenizer: an explicit path (tokenizer.bin, tokenizer.json, .gguf) wins; else the
 * GGUF's own vocab, the HF directory's tokenizer.json, or tokenizer.bin beside a llama2.c file.
 * -1 with a message saying which file was looked for and the --tokenizer option. */
int cli_load_tokenizer(struct tokenizer **out, const struct model *m, const char *explicit_path);
/* a command's help text, then the tasks lowbit knows (eval/task.c's table), wrapped */
void cli_help(FILE *f, const char *help);
/* stderr progress line when stderr is a terminal and not quiet: "label: done/total (rate/s, ETA)" */
void cli_progress(const char *label, long done, long total, double t0, bool quiet);
/* option parsing: when argv[*i] is "--name VALUE" or "--name=VALUE", *val = VALUE, *i moves past
 * it and 1 is returned; 0 when argv[*i] is another option; -1 (message) when VALUE is missing */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* parse an integer in [lo, hi] for option name; -1 with a message */
int cli_int(const char *s, const char *name, long lo, long hi, int *out);
/* "1,2,4" -> up to max ints; returns the count or -1 */
int cli_int_list(const char *s, const char *name, int *out, int max);
/* "lowbit CMD: unknown option X (see lowbit CMD --help)" and -1 */
int cli_unknown(const char *cmd, const char *arg);
#endif
