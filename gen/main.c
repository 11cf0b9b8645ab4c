/* gen/main.c: the lowbit command line: one binary, one subcommand per job. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "gen/cli.h"
#include "gen/pipeline.h"

static const struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cmds[] = {
    {"info", cmd_info, "print a model's architecture, shapes, dtypes, parameters, bits/weight"},
    {"ppl", cmd_ppl, "perplexity of a text (chunks or llama.cpp protocol), tokens/s"},
    {"nll", cmd_nll, "mean NLL per document of a text, llama2.c protocol (BOS + <= ctx tokens each)"},
    {"generate", cmd_generate, "greedy generation from a prompt (smoke test)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"logprobs", cmd_logprobs, "dump next-token log-probabilities of a token sequence (tests)"},
    {"eval", cmd_eval, "score tasks as lm-evaluation-harness does (arc, hellaswag, mmlu, ..., wikitext)"},
    {"kld", cmd_kld, "KL divergence vs a base model, llama.cpp's statistics (base log-probs cached)"},
    {"render", cmd_render, "the static site from the database: tables, charts, CSV/JSON datasets"},
    {"quant", cmd_quant, "quantize a model with a recipe (RTN, bitsandbytes, GGUF mixes) or a llama.cpp file type"},
    {"imatrix", cmd_imatrix, "importance matrix from calibration text, llama-imatrix's protocol and format"},
    {"run", cmd_run, "the pipeline: quantize every model x recipe, evaluate, collect (-j N workers)"},
    {"job", cmd_job, "one job of the pipeline (the worker lowbit run starts): quantize, evaluate, result file"},
    {"collect", cmd_collect, "load result files into the database (out/lowbit.db), idempotently"},
    {"import", cmd_import, "lm-evaluation-harness / Intel board results JSON into the database"},
    {"status", cmd_status, "the pipeline's plan: which jobs are done, failed or pending"},
    {"slurm", cmd_slurm, "the pipeline on a Slurm cluster: submit job arrays, their status, collect"},
    {"train", cmd_train, "train a Llama decoder from scratch (AdamW, deterministic); GGUF + HF + loss curve"},
    {"bench", cmd_bench, "prefill tokens/s and GFLOP/s of a model, FMA peak of this machine"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lowbit <command> [options]   (lowbit <command> --help for details)\n\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv) {
    /* a file-size limit (ulimit -f) makes a write fail with EFBIG, which every writer reports in
     * one message and cleans up after, instead of killing the process with SIGXFSZ half-way
     * (workers inherit this through exec) */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1) ? 1 : 0;
    fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
