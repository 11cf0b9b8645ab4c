# lowbit: the low-bit quantized LLM leaderboard.  Plain GNU make with knobs (see README.md).
#   make            build out/lowbit
#   make test       build and run every tests/test_*.c, ending with "tests: N passed, N failed"
#                   (tests/test_layers.c: the include layering, base <- kernels <- eval <- quant <- gen)
#   make check      the same under AddressSanitizer + UBSan (objects in out/build-check)
#   make test-slurm only tests/test_slurm.c: lowbit slurm on a one-node Slurm cluster (as root)
#   make bench      speed figures, each beside llama.cpp measured in the same run
#   make bench-scale  time, CPU, peak RSS / anonymous memory, FLOP/s of every stage on random-weight
#                   TinyLlama-1.1B and Llama-2-7B shape models (tests/bench_scale.sh: its knobs
#                   SCALE_SHAPES, SCALE_STAGES, SCALE_LAYERS, SCALE_THREADS...); not part of make test
#   make deps       install the Debian packages we need (apt-get, as root); every target depends on it
#   make fuzz       libFuzzer targets for every parser (clang, ASan + UBSan), FUZZ_SECONDS each
# Knobs: OPENMP=0 (build without OpenMP), NATIVE=1 (-march=native), SANITIZE=address,undefined,
#        DEVELOPER=1 (-Werror), LOWBIT_DATA=../shared/data (real models and datasets).

LOWBIT_DATA ?= ../shared/data
export LOWBIT_DATA

CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS  += -std=c11 -ffp-contract=off -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-format-nonliteral -MMD -MP -I.
PKGS     = jansson libpcre2-8 libxml-2.0 cairo fontconfig libdeflate sqlite3 libutf8proc
override LDLIBS  += -lcsv -lm
BUILD   ?= out/build

ifeq ($(DEVELOPER),1)
override CFLAGS  += -Werror
endif
ifdef SANITIZE
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=$(SANITIZE) -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=$(SANITIZE)
endif
ifneq ($(OPENMP),0)
override CFLAGS  += -fopenmp
override LDFLAGS += -fopenmp
else
override CFLAGS  += -Wno-unknown-pragmas
endif
ifeq ($(NATIVE),1)
override CFLAGS  += -march=native
endif

# Debian packages: checked with dpkg-query, installed with apt-get when missing.
DEB_PKGS = gcc make pkg-config libjansson-dev libpcre2-dev libxml2-dev libcairo2-dev libcsv-dev \
           libsqlite3-dev python3-numpy fonts-dejavu-core \
           libdeflate-dev libutf8proc-dev chromium nodejs clang \
           slurm-wlm slurmctld slurmd slurm-client munge time yamllint
DEPS_STAMP = out/.deps-ok

LIB_SRC  = $(wildcard kernels/base/*.c kernels/*.c eval/*.c quant/*.c render/*.c) $(filter-out gen/main.c,$(wildcard gen/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      = $(BUILD)/liblowbit.a
BIN      = out/lowbit

.PHONY: all deps test test-slurm check bench bench-scale report clean distclean FORCE
.DELETE_ON_ERROR:

all: $(BIN)

$(DEPS_STAMP): Makefile
	@sh tests/deps.sh $(DEB_PKGS)
	@mkdir -p out && touch $@

deps: $(DEPS_STAMP)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/gen/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIB) tests/t.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

test: $(BIN) $(TEST_BIN)
	@sh tests/run.sh $(BUILD)/tests $(BIN)

check:
	$(MAKE) test BUILD=out/build-check BIN=out/lowbit-check SANITIZE=address,undefined CFLAGS="-O1 -g"

# lowbit slurm against a real one-node Slurm cluster (munged, slurmctld, slurmd as root, everything
# under out/slurm-test/; tests/slurm/cluster.sh); make test runs it too
test-slurm: $(BIN) $(BUILD)/tests/test_slurm
	@LOWBIT_BIN=$(BIN) $(BUILD)/tests/test_slurm

# ---- fuzzing (tests/fuzz): make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS="gguf csv"]
# One libFuzzer target per parser of untrusted input, built with clang under ASan + UBSan in a
# build directory of its own (like make check's); seeds from LOWBIT_DATA and the unit tests'
# fixtures (tests/fuzz/seeds.sh); each target then runs FUZZ_SECONDS (tests/fuzz/run.sh), one
# after another, crashes to out/fuzz/crashes/<target>/.
FUZZ_TARGETS ?= gguf safetensors hf_config tokenizer_json llama2c csv task_jsonl lmeval_json result_json \
                text_path
FUZZ_SECONDS ?= 600
FUZZ_BUILD    = out/build-fuzz
FUZZ_CC      ?= clang
.PHONY: fuzz fuzz-build fuzz-seeds

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPENMP=0 SANITIZE=address,undefined \
	  CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

fuzz-seeds: $(BIN) $(addprefix $(BUILD)/tests/,test_hf test_tokenizer test_model test_qformats test_aqlm)
	@sh tests/fuzz/seeds.sh $(BUILD)/tests

fuzz: fuzz-build fuzz-seeds
	@st=0; for t in $(FUZZ_TARGETS); do \
	  sh tests/fuzz/run.sh $$t $(FUZZ_SECONDS) $(FUZZ_BUILD) || st=1; done; exit $$st

# render speed (10,000 synthetic runs) after the engine's; then the GPTQ Hessian's Gram kernel
# (kernels/gram.h, tests/bench_gram.c: GFLOP/s against the fp32 FMA peak measured in the same run)
# and GPTQ's float64 solver (tests/bench_gptq.c: against the float64 FMA peak)
$(BUILD)/tests/bench_render: tests/render_fixture.h
$(BUILD)/tests/test_render $(BUILD)/tests/test_hostile: tests/render_fixture.h

bench: $(BIN) $(BUILD)/tests/bench_render $(BUILD)/tests/bench_gram $(BUILD)/tests/bench_gptq \
       $(BUILD)/tests/bench_act_quant
	@sh tests/bench.sh $(BIN)
	@sh tests/bench_quant.sh $(BIN)
	@$(BUILD)/tests/bench_render $(BIN)
	@$(BUILD)/tests/bench_gram
	@$(BUILD)/tests/bench_gptq
	@$(BUILD)/tests/bench_act_quant
	@sh tests/bench_train.sh $(BIN)

# ---- real model sizes (README "Scale benchmark"): make bench-scale [SCALE_SHAPES=tinyllama] ----
# tests/memwatch runs a command and reports wall, CPU, peak RSS and peak anonymous memory
$(BUILD)/tests/memwatch: tests/memwatch.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

bench-scale: $(BIN) $(BUILD)/tests/memwatch
	@MEMWATCH=$(BUILD)/tests/memwatch sh tests/bench_scale.sh $(BIN)

# ---- the model zoo (README "Training and the zoo"): make zoo [ZOO_MODELS="zoo-1m ..."] ----
# gen/zoo/NAME.conf trained on LOWBIT_DATA's TinyStories text into out/zoo/NAME-HASH (cached by a
# hash of config, data and training code), linked as out/zoo/NAME; make report trains them as steps
# of its plan (lowbit run --zoo gen/zoo), within its budget.
ZOO_MODELS ?= zoo-1m zoo-4m zoo-15m
.PHONY: zoo
zoo: $(BIN)
	@sh gen/zoo/zoo.sh $(BIN) $(ZOO_MODELS)

# ---- the pipeline (README "The pipeline"): make report [FULL=1] [REPORT_JOBS=N] [REPORT_BUDGET=20m] ----
# gen/schema.sql is compiled into the binary (gen/db.c includes schema.inc). version.inc (rewritten
# only when it changes) holds `git describe` and the code hash in every job key: the sources that
# compute a job's numbers, the compiler and its flags (not the site, docs or tests).
CODE_SRC = $(sort $(wildcard kernels/base/*.[ch] kernels/*.[ch] kernels/*.inc eval/*.[ch] quant/*.[ch])) gen/job.c gen/plan.c \
           gen/pipeline.h gen/cmd_eval.c gen/cmd_ppl.c gen/cli.c gen/cli.h
$(BUILD)/gen/schema.inc: gen/schema.sql
	@mkdir -p $(dir $@)
	{ echo 'static const unsigned char lowbit_schema_sql[] = {'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; echo '0x00};'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/version.inc: FORCE
	@mkdir -p $(dir $@)
	@printf '#define LOWBIT_BUILD_DESCRIBE "%s"\n#define LOWBIT_CODE_HASH "%s"\n' \
	  "$$(git describe --always --dirty --tags 2>/dev/null)" \
	  "$$({ cat $(CODE_SRC); echo '$(filter-out -I% -MMD -MP,$(CFLAGS))'; $(CC) --version | head -1; } \
	      | sha256sum | cut -c1-64)" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/gen/db.o: $(BUILD)/gen/schema.inc
$(BUILD)/gen/plan.o: $(BUILD)/gen/version.inc
$(BUILD)/gen/db.o $(BUILD)/gen/plan.o: override CFLAGS += -I$(BUILD)
FORCE:

# REPORT_BUDGET (default 20m; 1200, 20m, 1.5h; 0 = none) counts from make's start, the build
# included: lowbit run starts no job (and no zoo training) whose estimate would end past it, the
# site shows what is pending (REPORT_OUT/pending.json), and the next make report continues. The
# zoo (gen/zoo/zoo.sh) is trained inside the same plan (--zoo gen/zoo), smallest model first.
REPORT_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
REPORT_ARGS ?=
REPORT_OUT ?= out
REPORT_BUDGET ?= 20m
REPORT_T0 := $(shell date +%s)
report: $(BIN)
	$(BIN) run -j $(REPORT_JOBS) $(if $(filter 1,$(FULL)),--full) --out $(REPORT_OUT) --zoo gen/zoo \
	  --budget $(REPORT_BUDGET) --budget-start $(REPORT_T0) $(REPORT_ARGS)
	@$(BIN) render --help >/dev/null 2>&1 || { echo "make report: this lowbit has no 'render' command \
	  yet (gen/cmd_render.c + render/): $(REPORT_OUT)/lowbit.db is built, $(REPORT_OUT)/site is not" >&2; exit 1; }
	$(BIN) render --db $(REPORT_OUT)/lowbit.db -o $(REPORT_OUT)/site --pending $(REPORT_OUT)/pending.json

clean:
	rm -rf out/build out/build-check out/build-fuzz out/lowbit out/lowbit-check

distclean:
	rm -rf out

-include $(LIB_OBJ:.o=.d) $(BUILD)/gen/main.d $(TEST_BIN:=.d)
