-- gen/schema.sql: the lowbit database (out/lowbit.db), schema version 5.
--
-- The contract between the pipeline (gen/: the only writer, through `lowbit collect`) and the site
-- (render/: reads SQL only). One row per model, per recipe, per run (a model × recipe job), per
-- score. A run's identity is job_key, the content hash of everything that determines its numbers
-- (model files, recipe, task definitions and data files, code version): same key, same numbers.
-- Migrations: PRAGMA user_version holds the version; gen/db.c upgrades older databases step by
-- step inside one transaction.

CREATE TABLE IF NOT EXISTS models (
    id            TEXT PRIMARY KEY,      -- models.csv id, e.g. "stories260K"
    path          TEXT NOT NULL,         -- as given (HF dir, GGUF, llama2.c file)
    tokenizer     TEXT,                  -- explicit tokenizer path, if any
    display_name  TEXT NOT NULL,
    family        TEXT,                  -- "llama", "qwen2", "tinystories" ...
    base_model    TEXT,                  -- for third-party quantized checkpoints: the base's id
    model_type    TEXT,                  -- pretrained | fine-tuned | chat | merge (board icons)
    license       TEXT,
    notes         TEXT,
    architecture  TEXT,
    n_params      INTEGER,               -- parameters of the unquantized model (a mixture of
                                         -- experts: every expert's)
    files_sha256  TEXT,                  -- hash of the model's files as read
    n_params_active INTEGER              -- the parameters a token goes through (version 5): the
                                         -- shared ones plus n_expert_used experts' for a mixture
                                         -- of experts, n_params for a dense model; NULL when not
                                         -- recorded (rows of earlier versions)
);

CREATE TABLE IF NOT EXISTS recipes (
    id             TEXT PRIMARY KEY,     -- recipes.csv id, e.g. "gptq-w4g128"
    algorithm      TEXT NOT NULL,        -- fp | rtn | gptq | awq | autoround | bnb | gguf | aqlm
    weight_dtype   TEXT NOT NULL,        -- int2 int3 int4 int8 nf4 fp4 float16 bfloat16 float32,
                                         -- or the GGUF mix name (q4_k_m ...)
    bits           REAL,                 -- nominal bits (4, 3, 2.x for AQLM ...)
    group_size     INTEGER,              -- -1 = per channel; NULL when not applicable
    sym            INTEGER,              -- 1 symmetric, 0 asymmetric, NULL n/a
    double_quant   INTEGER,              -- bnb double quantization of absmax
    compute_dtype  TEXT NOT NULL,        -- fp32 | fp16 | bf16 | int8
    calib_set      TEXT,                 -- calibration text (file name) or NULL
    calib_nsamples INTEGER,
    calib_seqlen   INTEGER,
    knobs          TEXT                  -- JSON object of algorithm knobs (iters, lr, damp ...)
);

CREATE TABLE IF NOT EXISTS runs (
    id               INTEGER PRIMARY KEY,
    job_key          TEXT NOT NULL UNIQUE,
    model_id         TEXT NOT NULL REFERENCES models(id),
    recipe_id        TEXT NOT NULL REFERENCES recipes(id),
    status           TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error            TEXT,               -- one line: what failed (status failed)
    log_tail         TEXT,               -- last lines of the job's log
    started_at       TEXT,               -- ISO 8601 UTC
    finished_at      TEXT,
    code_version     TEXT,               -- git describe of lowbit
    host_cpu         TEXT,
    threads          INTEGER,
    kernels_isa      TEXT,
    quant_seconds    REAL,               -- quantization wall time (0 for fp baselines)
    quant_peak_rss_mb REAL,
    eval_seconds     REAL,
    eval_peak_rss_mb REAL,
    artifact_path    TEXT,               -- the quantized model file/dir, relative to out/
    artifact_bytes   INTEGER,            -- its size on disk
    bits_per_weight  REAL,               -- 8 * weight bytes / parameters of the artifact
    n_params         INTEGER,
    failure          TEXT CHECK (failure IN ('environment', 'input')),
                                         -- status failed: where the failure came from (version
                                         -- 3): the environment (disk, quota, I/O, file-size
                                         -- limit, memory, a worker killed from outside: the next
                                         -- lowbit run retries the job) or the inputs (kept until
                                         -- --retry-failed); NULL for ok runs
    prefill_tps      REAL,               -- what it costs to run the artifact on host_cpu with
    decode_tps       REAL,               -- `threads` threads (version 4): prefill tokens/s of a
    run_memory_mb    REAL,               -- 512-token context, decode tokens/s after a 256-token
                                         -- prompt, and the memory to run it at ctx 512 (weights
                                         -- as loaded + KV cache + forward scratch), MB; figures
                                         -- compare only within one host
    n_params_active  INTEGER             -- as models.n_params_active, of the artifact (version 5)
);
CREATE INDEX IF NOT EXISTS runs_model ON runs(model_id);

CREATE TABLE IF NOT EXISTS scores (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task    TEXT NOT NULL,   -- lm-eval task name (arc_challenge ... winogrande, wikitext) or
                             -- "ppl" / "kld" for the perplexity and KL-divergence protocols
    metric  TEXT NOT NULL,   -- acc, acc_norm, perplexity, word_perplexity, byte_perplexity,
                             -- bits_per_byte, ppl_llamacpp_ctx512, kld_mean, same_top, dp_rms ...
    value   REAL NOT NULL,
    stderr  REAL,
    n       INTEGER,         -- documents (or scored tokens for ppl/kld)
    PRIMARY KEY (run_id, task, metric)
);

CREATE TABLE IF NOT EXISTS task_defs (
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task           TEXT NOT NULL,
    dataset_file   TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    n_docs         INTEGER NOT NULL,  -- documents scored
    n_docs_full    INTEGER,           -- documents in the full set
    limit_n        INTEGER,           -- --limit (NULL = full set)
    seed           INTEGER,
    num_fewshot    INTEGER NOT NULL DEFAULT 0,
    add_bos        INTEGER,
    ctx            INTEGER,
    n_truncated    INTEGER,           -- documents whose continuation was longer than ctx and was
                                      -- scored on its last ctx tokens, as lm-eval's input
                                      -- slicing does (version 4; NULL: not recorded)
    PRIMARY KEY (run_id, task)
);

-- The per-sample records of a run (issue 17): one row per document of an lm-eval task, one per
-- chunk of the ppl and kld protocols; the input of the paired statistics against the model's
-- baseline, published as data/details/<run_id>.json. Version 4.
CREATE TABLE IF NOT EXISTS samples (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task      TEXT NOT NULL,     -- as scores.task
    doc       INTEGER NOT NULL,  -- the document's index in the task's full set; for ppl/kld
                                 -- the chunk's index
    gold      INTEGER,           -- multiple choice: the right choice
    pred      INTEGER,           -- multiple choice: the choice of highest log-likelihood
    pred_norm INTEGER,           -- ... of highest log-likelihood per character (acc_norm)
    acc       REAL,              -- 1 right, 0 wrong (lambada: greedy continuation)
    acc_norm  REAL,
    value     REAL,              -- lambada, wikitext: the document's log-likelihood; ppl: the
                                 -- chunk's mean NLL; kld: the chunk's mean KLD
    value2    REAL,              -- kld: the chunk's mean NLL of the model
    truncated INTEGER,           -- 1: a continuation was cut to the context
    choices   TEXT,              -- multiple choice: JSON array of the choices' log-likelihoods
    PRIMARY KEY (run_id, task, doc)
);

-- The documents' texts, once per task and data file (every run of a sample scores the same
-- documents): what the drill-down pages show beside a run's flips. Written by collect from the
-- result files (INSERT OR IGNORE). Version 4.
CREATE TABLE IF NOT EXISTS documents (
    task           TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,    -- task_defs.dataset_sha256 of the runs that scored it
    doc            INTEGER NOT NULL, -- samples.doc
    context        TEXT,             -- the prompt (lm-eval doc_to_text); NULL for winogrande
    choices        TEXT,             -- JSON array: the choices (winogrande: the contexts)
    continuation   TEXT,             -- winogrande: the shared continuation; lambada: the target
    PRIMARY KEY (task, dataset_sha256, doc)
);

CREATE TABLE IF NOT EXISTS provenance (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,    -- "recipe.knobs", "calib.sha256", "quant.iters", "lowbit.cflags" ...
    value  TEXT,
    PRIMARY KEY (run_id, key)
);

-- Training provenance of a model trained by `lowbit train` (gen/cmd_train.c writes OUT/train.json
-- and OUT/curve.csv beside OUT/model.gguf). collect records it with the model row, in the same
-- transaction, when the model's file (or HF directory, or lowbit train's OUT/hf/) lies in a
-- directory holding both files: every record of the model replaces its rows; a model without
-- them, or with a malformed one (a warning names the file), has none. Version 2.
CREATE TABLE IF NOT EXISTS training (
    model_id    TEXT PRIMARY KEY REFERENCES models(id),
    train_json  TEXT NOT NULL,           -- train.json's object (compact, keys sorted): model shape,
                                         -- optimizer settings, params, train_tokens_seen,
                                         -- heldout_loss + heldout_protocol, train_seconds ...
    source_dir  TEXT NOT NULL,           -- the directory both files were read from
    files_sha256 TEXT NOT NULL           -- sha256 of train.json's bytes, a NUL, curve.csv's bytes
                                         -- (the same files again change nothing)
);

CREATE TABLE IF NOT EXISTS training_curve (
    model_id     TEXT NOT NULL REFERENCES training(model_id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,       -- optimizer steps done
    tokens       INTEGER NOT NULL,       -- training tokens seen by then
    train_loss   REAL NOT NULL,          -- mean training loss since the previous row (nats/token)
    heldout_loss REAL,                   -- held-out loss at this step (nats/token; the last row
                                         -- scores every held-out document)
    lr           REAL,                   -- learning rate at this step
    seconds      REAL,                   -- training wall time so far
    PRIMARY KEY (model_id, step)
);

-- The tasks lowbit evaluates, in the board's column order: eval/task.c's table, the one place a
-- task is defined, written here by every collect (gen/db.c: db_write_tasks replaces the rows) so
-- that the site reads its columns, labels and metrics from SQL. Version 4.
CREATE TABLE IF NOT EXISTS tasks (
    name          TEXT PRIMARY KEY,      -- lm-eval task name, as in scores.task
    position      INTEGER NOT NULL UNIQUE, -- column order
    label         TEXT NOT NULL,         -- column header ("ARC-c", as on Intel's board)
    abbr          TEXT NOT NULL,         -- short label for charts ("HellaS.")
    title         TEXT NOT NULL,         -- what it is ("ARC-Challenge", "LAMBADA (OpenAI)")
    output_type   TEXT NOT NULL,         -- lm-eval's: multiple_choice, loglikelihood ...
    metrics       TEXT NOT NULL,         -- comma list of the metrics it reports
    board_metric  TEXT,                  -- the metric the board's average takes ("acc"); NULL:
                                         -- not part of the average (wikitext)
    num_fewshot   INTEGER NOT NULL DEFAULT 0,
    n_docs_full   INTEGER,               -- documents in the full set
    default_limit INTEGER                -- documents of the default sample; NULL = the whole set
);

-- The board: one row per successful run. average = plain mean of the board tasks' metric (the
-- tasks with a board_metric: Intel's ten, "acc"), NULL unless every one of them is present.
CREATE VIEW IF NOT EXISTS leaderboard AS
SELECT r.id AS run_id, r.model_id, m.display_name, m.family, m.model_type, m.base_model,
       r.recipe_id, c.algorithm, c.weight_dtype, c.compute_dtype, c.group_size, c.double_quant,
       c.bits, r.bits_per_weight, r.artifact_bytes, r.n_params, r.quant_seconds,
       (SELECT CASE WHEN count(*) > 0 AND count(*) = (SELECT count(*) FROM tasks
                                                       WHERE board_metric IS NOT NULL)
               THEN avg(s.value) END
          FROM scores s JOIN tasks t ON t.name = s.task AND t.board_metric = s.metric
         WHERE s.run_id = r.id) AS average
FROM runs r JOIN models m ON m.id = r.model_id JOIN recipes c ON c.id = r.recipe_id
WHERE r.status = 'ok';

PRAGMA user_version = 5;
