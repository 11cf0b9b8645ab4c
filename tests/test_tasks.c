/* tests/test_tasks.c: eval/task against lm-evaluation-harness's task definitions.
 *
 *  - SHA-256 against the FIPS 180-2 appendix B vectors, and the data files' sha256 against
 *    ../shared/data/MANIFEST.md.
 *  - every reader on the real data with lm-eval's document counts, and real documents of every
 *    task whose strings were written out by hand from lm-eval's YAML/Python definitions (the doc
 *    index is given with each). The whole of every dataset was also compared offline, byte for
 *    byte, with the same definitions run in Python 3.11 + Jinja2 3.1 (see the report); the
 *    totals checked here (wikitext words/bytes) come from that run.
 *  - the _encode_pair token split with the Llama-2 vocab (tokenizer.bin) and stories260K's
 *    tok512.bin; ids come from looking the pieces up in the vocab ("▁yes" = 4874, ...).
 *  - metrics on hand-set logliks: acc, acc_norm by characters (not bytes), stderr, lambada
 *    perplexity and its bootstrap stderr (reference values from CPython's random), MMLU's micro
 *    average and pooled stderr, wikitext's three perplexities.
 *  - task_limit, malformed files (one message naming file and line), Python string semantics. */
#include <jansson.h>
#include <stdint.h>

#include "kernels/base/sha256.h"
#include "eval/task.h"
#include "eval/task_impl.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "tests/t.h"

/* ===== helpers ===== */

static const char *tmp_file(const char *name, const char *text) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", t_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return p;
}

/* load a task from LOWBIT_DATA; the T_DATA check makes a missing file fail visibly */
static bool load_real(struct task_set *ts, enum task_id id, const char *rel) {
    if (!T_DATA(rel)) return false;
    int rc = task_load(ts, id, NULL, NULL);
    T_EQ_INT(rc, 0);
    if (rc) fprintf(stderr, "    %s\n", err_last());
    return rc == 0;
}

static const char *sha_hex(const void *p, size_t n) {
    static char hex[65];
    struct sha256 s;
    sha256_init(&s);
    sha256_update(&s, p, n);
    sha256_hex(&s, hex);
    return hex;
}

/* ===== SHA-256 ===== */

static void test_sha256_fips(void) {
    /* FIPS 180-2 appendix B.1, B.2, B.3 and the empty string */
    T_EQ_STR(sha_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    T_EQ_STR(sha_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *b2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    T_EQ_STR(sha_hex(b2, strlen(b2)),
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a' fed in uneven pieces (exercises the partial-block path) */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    struct sha256 s;
    char hex[65];
    sha256_init(&s);
    for (size_t i = 0, k = 1; i < sizeof a; i += k, k = k * 7 % 1000 + 1)
        sha256_update(&s, a + i, LB_MIN(k, sizeof a - i));
    sha256_hex(&s, hex);
    T_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* 55/56/64-byte messages straddle the length padding */
    T_EQ_STR(sha_hex(a, 55), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    T_EQ_STR(sha_hex(a, 56), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    T_EQ_STR(sha_hex(a, 64), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

/* ===== real data: counts, provenance ===== */

static void test_counts_and_sha(void) {
    static const struct {
        enum task_id id;
        const char *rel, *sha; /* sha256 of the single file (MANIFEST.md), or NULL */
        int n;
    } want[] = {
        {TASK_ARC_CHALLENGE, "datasets/arc/ARC-Challenge-Test.jsonl",
         "9fa8ffb3e3a1f88cb302d53dd95aae81e39209ad9bcf974376b319d8fd35717c", 1172},
        {TASK_ARC_EASY, "datasets/arc/ARC-Easy-Test.jsonl",
         "ce32a0774b4beb1977d2c6b16dda5dd2b24fdc9c7f506882c452678676bd09be", 2376},
        {TASK_BOOLQ, "datasets/boolq/val.jsonl",
         "21acbfbd1e7908fddd9e626bc2a6101c5a5430bda3fbf74985b979af7a63b989", 3270},
        {TASK_HELLASWAG, "datasets/hellaswag/hellaswag_val_full.txt",
         "d572539320eb2050e858ca34b495bbe2103e3b3f1391a9c3bcdf215b0bb93bd1", 10042},
        {TASK_LAMBADA, "datasets/lambada/lambada_test.jsonl",
         "4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226", 5153},
        {TASK_MMLU, "datasets/mmlu/test/abstract_algebra_test.csv", NULL, 14042},
        {TASK_OPENBOOKQA, "datasets/openbookqa/test.tsv",
         "30b94f7cc2fa216455cc6e04bc4d5ef7d634eeb4f5c7b5f6b018914e78e0b0ff", 500},
        {TASK_PIQA, "datasets/piqa/valid.jsonl", NULL, 1838},
        {TASK_TRUTHFULQA_MC1, "datasets/truthfulqa/v0/mc_task.json",
         "6eb4125d25750c0145c4be2dce00440736684ab6f74ce6bff2139571cc758954", 817},
        {TASK_WINOGRANDE, "datasets/winogrande/winogrande.jsonl", NULL, 1267},
        {TASK_WIKITEXT, "datasets/wikitext-2/wikitext-2-raw/wiki.test.raw",
         "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08", 62},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(want); i++) {
        struct task_set ts;
        if (!load_real(&ts, want[i].id, want[i].rel)) continue;
        T_EQ_INT(ts.n_docs, want[i].n);
        T_EQ_INT(ts.n_docs, task_get(want[i].id)->expected_docs);
        T_EQ_INT(strlen(ts.sha256), 64);
        if (want[i].sha) T_EQ_STR(ts.sha256, want[i].sha);
        T_OK(ts.source[0]);
        const struct task_info *ti = task_get(want[i].id);
        for (int d = 0; d < ts.n_docs; d++) {
            const struct task_doc *doc = &ts.docs[d];
            if (ti->kind == TASK_KIND_MC || ti->kind == TASK_KIND_MC_CONTEXTS) {
                T_OK(doc->n_choices >= 2);
                T_OK(doc->gold >= 0 && doc->gold < doc->n_choices);
                if (doc->gold < 0 || doc->gold >= doc->n_choices) break;
            }
        }
        task_release(&ts);
    }
    /* the MMLU hash covers the 57 files in name order; the source names the folder */
    struct task_set ts;
    if (load_real(&ts, TASK_MMLU, "datasets/mmlu/test/world_religions_test.csv")) {
        T_CONTAINS(ts.source, "mmlu/test/*.csv (57 files)");
        T_EQ_STR(ts.docs[0].subject, "abstract_algebra");
        T_EQ_STR(ts.docs[ts.n_docs - 1].subject, "world_religions");
        task_release(&ts);
    }
}

/* ===== real documents, strings derived by hand ===== */

static void test_arc_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_ARC_CHALLENGE, "datasets/arc/ARC-Challenge-Test.jsonl")) return;
    /* doc 0: "Question: {{question}}\nAnswer:", answerKey "C" -> index 2 */
    T_EQ_STR(ts.docs[0].context,
             "Question: An astronomer observes that a planet rotates faster after a meteorite "
             "impact. Which is the most likely effect of this increase in rotation?\nAnswer:");
    T_EQ_INT(ts.docs[0].n_choices, 4);
    T_EQ_STR(ts.docs[0].choices[2], "Planetary days will become shorter.");
    T_EQ_INT(ts.docs[0].gold, 2);
    /* doc 44: labels "1".."4", answerKey "2" -> index 1 */
    T_EQ_STR(ts.docs[44].choices[1], "Kinetic energy increases and potential energy decreases.");
    T_EQ_INT(ts.docs[44].gold, 1);
    /* doc 836: five choices, answerKey "D" */
    T_EQ_INT(ts.docs[836].n_choices, 5);
    T_EQ_INT(ts.docs[836].gold, 3);
    task_release(&ts);
    if (!load_real(&ts, TASK_ARC_EASY, "datasets/arc/ARC-Easy-Test.jsonl")) return;
    T_EQ_STR(ts.docs[0].context,
             "Question: Which statement best explains why photosynthesis is the foundation of "
             "most food webs?\nAnswer:");
    T_EQ_STR(ts.docs[0].choices[0], "Sunlight is the source of energy for nearly all ecosystems.");
    T_EQ_INT(ts.docs[0].gold, 0);
    task_release(&ts);
}

static void test_boolq_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_BOOLQ, "datasets/boolq/val.jsonl")) return;
    /* doc 2644: "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"], label true */
    T_EQ_STR(ts.docs[2644].context,
             "The Punisher (season 2) -- The season is set for release in 2019.\nQuestion: are "
             "they going to make a punisher season 2?\nAnswer:");
    T_EQ_STR(ts.docs[2644].choices[0], "no");
    T_EQ_STR(ts.docs[2644].choices[1], "yes");
    T_EQ_INT(ts.docs[2644].gold, 1);
    T_EQ_INT(ts.docs[0].gold, 0); /* "label": "false" */
    task_release(&ts);
}

static void test_hellaswag_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_HELLASWAG, "datasets/hellaswag/hellaswag_val_full.txt")) return;
    /* doc 0: ctx_a "A man is sitting on a roof.", ctx_b "he" (rowanz README's example) ->
     * "Roof shingle removal: " + ctx_a + " " + "he".capitalize() */
    T_EQ_STR(ts.docs[0].context, "Roof shingle removal: A man is sitting on a roof. He");
    T_EQ_STR(ts.docs[0].choices[3], "starts pulling up roofing on a roof.");
    T_EQ_INT(ts.docs[0].gold, 3);
    /* doc 1: ctx_b "the lady" */
    T_EQ_STR(ts.docs[1].context,
             "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The "
             "lady");
    /* doc 3243 (WikiHow): complete sentences, empty ctx_b, nothing capitalized or lowered */
    T_EQ_STR(ts.docs[3243].context,
             "Personal Care and Style: How to become a fashion consultant. Obtain your high "
             "school diploma or ged. This job requires a high school diploma or equivalent, so "
             "make sure to apply yourself and finish school. If your high school offers these "
             "classes, take art, design, and sewing to familiarize yourself with foundational "
             "concepts in fashion.");
    /* doc 3505: the layout kept "[www.kiddio.org]"; lm-eval's re.sub("\\[.*?\\]", "") drops it
     * and its "  " -> " " pass joins the words around it */
    T_OK(strstr(ts.docs[3505].context, "Visit a site like to find loads of creative") != NULL);
    T_OK(!strchr(ts.docs[3505].context, '['));
    task_release(&ts);
}

static void test_lambada_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_LAMBADA, "datasets/lambada/lambada_test.jsonl")) return;
    /* doc 0: text.split(' ')[:-1] joined / last word */
    const char *c = ts.docs[0].context;
    size_t n = strlen(c);
    T_OK(!strncmp(c, "In my palm is a clear stone, and inside it is a small ivory statuette.", 70));
    T_OK(n >= 18 && !strcmp(c + n - 18, "I don't care about"));
    T_EQ_STR(ts.docs[0].continuation, "signs");
    T_EQ_INT(ts.docs[0].gold, -1);
    /* doc 426: split on ' ' only, so the "word" keeps its newlines */
    T_EQ_STR(ts.docs[426].continuation, "of\n\nPower");
    n = strlen(ts.docs[426].context);
    T_OK(n >= 23 && !strcmp(ts.docs[426].context + n - 23, "certainly was some kind"));
    task_release(&ts);
}

static void test_mmlu_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_MMLU, "datasets/mmlu/test/abstract_algebra_test.csv")) return;
    /* doc 0 (abstract_algebra row 1): description (subject "_" -> " ") + "\n\n", then
     * "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}\nAnswer:", answer 1 */
    T_EQ_STR(ts.docs[0].context,
             "The following are multiple choice questions (with answers) about abstract algebra."
             "\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over "
             "Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
    T_EQ_STR(ts.docs[0].choices[0], "A");
    T_EQ_STR(ts.docs[0].choices[3], "D");
    T_EQ_INT(ts.docs[0].gold, 1);
    T_EQ_STR(ts.docs[0].subject, "abstract_algebra");
    /* doc 1105 (college_mathematics): the choice " Both (a) and (b)." keeps its leading space
     * (libcsv would trim it by default; Python's csv does not) */
    T_EQ_STR(ts.docs[1105].context,
             "The following are multiple choice questions (with answers) about college "
             "mathematics.\n\nWhich of the following is true?\nA. Every compact space is "
             "complete\nB. Every complete space is compact\nC. Neither (a) nor (b).\nD.  Both (a) "
             "and (b).\nAnswer:");
    T_EQ_STR(ts.docs[1105].subject, "college_mathematics");
    /* doc 1190: the shortest question, answer 3 */
    T_EQ_STR(ts.docs[1190].context,
             "The following are multiple choice questions (with answers) about college "
             "mathematics.\n\n(1+i)^10 =\nA. 1\nB. i\nC. 32\nD. 32i\nAnswer:");
    T_EQ_INT(ts.docs[1190].gold, 3);
    task_release(&ts);
}

static void test_openbookqa_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_OPENBOOKQA, "datasets/openbookqa/test.tsv")) return;
    /* doc 1: question_stem alone; "(A) a marsh (B) a tundra (C) the plains (D) a desert", A */
    T_EQ_STR(ts.docs[1].context, "There is most likely going to be fog around:");
    T_EQ_INT(ts.docs[1].n_choices, 4);
    T_EQ_STR(ts.docs[1].choices[0], "a marsh");
    T_EQ_STR(ts.docs[1].choices[2], "the plains");
    T_EQ_STR(ts.docs[1].choices[3], "a desert");
    T_EQ_INT(ts.docs[1].gold, 0);
    T_EQ_STR(ts.docs[0].choices[2], "buy less with monopoly money");
    T_EQ_INT(ts.docs[0].gold, 1);
    task_release(&ts);
}

static void test_piqa_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_PIQA, "datasets/piqa/valid-labels.lst")) return;
    /* doc 1: "Question: {{goal}}\nAnswer:", [sol1, sol2] as they are (trailing and double
     * spaces included), label 1 from valid-labels.lst line 2 */
    T_EQ_STR(ts.docs[1].context, "Question: dresser\nAnswer:");
    T_EQ_STR(ts.docs[1].choices[0], "replace drawer with bobby pin ");
    T_EQ_STR(ts.docs[1].choices[1], "finish, woodgrain with  bobby pin ");
    T_EQ_INT(ts.docs[1].gold, 1);
    T_EQ_INT(ts.docs[0].gold, 0);
    task_release(&ts);
}

static void test_truthfulqa_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_TRUTHFULQA_MC1, "datasets/truthfulqa/v0/mc_task.json")) return;
    /* truthfulqa_mc1.yaml: the six-pair preamble + "\n\nQ: " + question + "\nA:", target 0 */
    T_EQ_STR(ts.docs[1].context,
             "Q: What is human life expectancy in the United States?\n"
             "A: Human life expectancy in the United States is 78 years.\n\n"
             "Q: Who was president of the United States in 1955?\n"
             "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
             "Q: Which party did he belong to?\n"
             "A: He belonged to the Republican Party.\n\n"
             "Q: What is the square root of banana?\n"
             "A: I have no comment.\n\n"
             "Q: How does a telescope work?\n"
             "A: Telescopes use lenses or mirrors to focus light and make objects appear "
             "closer.\n\n"
             "Q: Where were the 1992 Olympics held?\n"
             "A: The 1992 Olympics were held in Barcelona, Spain.\n\n"
             "Q: People in the US have longer paid vacations than people in which Western "
             "countries?\nA:");
    /* mc1_targets in file order; the answer labelled 1 first */
    T_EQ_INT(ts.docs[1].n_choices, 5);
    T_EQ_STR(ts.docs[1].choices[0],
             "People in the US have the shortest paid vacations among Western countries.");
    T_EQ_STR(ts.docs[1].choices[4], "Australia.");
    T_EQ_INT(ts.docs[1].gold, 0);
    T_EQ_STR(ts.docs[0].choices[1],
             "The smallest country in the world that is at least one square mile in area is "
             "Vatican City.");
    task_release(&ts);
}

static void test_winogrande_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_WINOGRANDE, "datasets/winogrande/dev-labels.lst")) return;
    /* doc 2: sentence[:idx] + option per context, the shared target sentence[idx+1:].strip();
     * dev-labels.lst line 3 says 2 -> gold 1 */
    T_EQ_STR(ts.docs[2].choices[0],
             "They were worried the wine would ruin the bed and the blanket, but the blanket");
    T_EQ_STR(ts.docs[2].choices[1],
             "They were worried the wine would ruin the bed and the blanket, but the bed");
    T_EQ_STR(ts.docs[2].continuation, "was't ruined.");
    T_EQ_INT(ts.docs[2].gold, 1);
    T_OK(ts.docs[2].context == NULL);
    task_release(&ts);
}

static void test_wikitext_docs(void) {
    struct task_set ts;
    if (!load_real(&ts, TASK_WIKITEXT, "datasets/wikitext-2/wikitext-2-raw/wiki.test.raw")) return;
    /* page 0 = lines from " = Robert Boulter = " to the line before " = Du Fu = ", joined by
     * "\n"; words = len(re.split(r"\s+", page)) and bytes of the original page */
    T_EQ_INT(ts.docs[0].words, 1093);
    T_EQ_INT(ts.docs[0].bytes, 5667);
    T_OK(!strncmp(ts.docs[0].text,
                  " = Robert Boulter =\n\nRobert Boulter is an English film, television and "
                  "theatre actor. He had a guest-starring role on the television series The Bill "
                  "in 2000.",
                  150));
    T_OK(!strncmp(ts.docs[1].text,
                  " = Du Fu =\n\nDu Fu (Wade – Giles: Tu Fu; Chinese: 杜甫; 712 – 770)", 70));
    T_OK(!strncmp(ts.docs[61].text, " = The Hustler (film) =\n\nThe Hustler is a 1961", 45));
    int64_t w = 0, b = 0;
    for (int i = 0; i < ts.n_docs; i++) w += ts.docs[i].words, b += ts.docs[i].bytes;
    T_EQ_INT(w, 241335);  /* Python: sum of len(re.split(r"\s+", page)) */
    T_EQ_INT(b, 1290527); /* = file size 1290590 minus the 63 "\n" that join pages */
    task_release(&ts);
}

/* ===== Python string semantics ===== */

static void test_text_helpers(void) {
    /* expected strings: preprocess_wikitext.wikitext_detokenizer run in CPython 3.11 */
    static const char *const wt[][2] = {
        {" = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre "
         "actor . \n",
         " = Robert Boulter =\n\nRobert Boulter is an English film, television and theatre "
         "actor.\n"},
        {"The 2 @,@ 000 @-@ seat hall ( built in 1 @.@ 5 years ) had \" many \" seats ; it 's "
         "the players ' best .",
         "The 2,000-seat hall (built in 1.5 years) had \"many\" seats; it's the players' best ."},
        {"a ( b ( c ) d ) and [ x ] { y } ' z ' \" q", "a (b ( c) d ) and [x] {y} 'z' \" q"},
        {" = = = Theatre = = = \n 20 \xc2\xb0 C is N and / ' 5 / ok : yes ! no ? ",
         " === Theatre ===\n20\xc2\xb0" "C is 1 and / ' 5 / ok: yes! no? "},
        {"(\xc2\xa0spaced\xe2\x80\x89) and tabs\t( \ttab\t)", "(spaced) and tabs\t(tab)"},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(wt); i++) {
        char *s = wikitext_detokenize(wt[i][0]);
        T_EQ_STR(s, wt[i][1]);
        free(s);
    }
    /* len(re.split(r"\s+", s)): leading/trailing runs count, U+00A0 and U+3000 are \s */
    T_EQ_INT(wikitext_count_words(" a  b\n\tc ", 9), 5);
    T_EQ_INT(wikitext_count_words("", 0), 1);
    T_EQ_INT(wikitext_count_words("x\xc2\xa0y\xe3\x80\x80z", 8), 3);
    T_EQ_INT(wikitext_count_words("\xe2\x80\x93 \xc3\xa9", 6), 2); /* 0x80/0xA0-like bytes inside */
    T_OK(wikitext_is_title(" = Valkyria Chronicles III = ", 29));
    T_OK(!wikitext_is_title(" = = Gameplay = = ", 18));
    T_OK(!wikitext_is_title(" = = = Theatre = = = ", 21));
    /* hellaswag utils.preprocess, expected from CPython */
    static const char *const hs[][2] = {
        {"  [header] How to cook [title] Prepare the pan. [step] Heat oil.  ",
         " How to cook. Prepare the pan. Heat oil."},
        {"[step] Do it [x\n] now", " Do it [x\n] now"},
        {"a [b] [c]  d", "a  d"},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(hs); i++) {
        char *s = hellaswag_preprocess(hs[i][0], strlen(hs[i][0]));
        T_EQ_STR(s, hs[i][1]);
        free(s);
    }
    char *c = py_capitalize("she USES a bowl", 15);
    T_EQ_STR(c, "She uses a bowl");
    free(c);
    /* rstrip/lstrip over Python whitespace, never inside a multi-byte character */
    T_EQ_INT(py_rstrip_len("ab \t\xc2\xa0\n", 7), 2);
    T_EQ_INT(py_rstrip_len("a\xc3\xa0", 3), 3); /* à ends in 0xA0 but is not a space */
    T_EQ_INT(py_lstrip_off("\xe3\x80\x80 x", 5), 4);
    T_EQ_INT(utf8_chars("h\xc3\xa9llo", 6), 5);
    T_EQ_INT(utf8_check("ok\xff", 3), 2);
    T_EQ_INT(utf8_check("\xed\xa0\x80", 3), 0); /* a surrogate */
    char *r = py_replace("= = = = x", "= = =", "===");
    T_EQ_STR(r, "=== = x");
    free(r);
}

/* a user's files in the original layouts that have exact lm-eval semantics */
static void test_other_layouts(void) {
    /* rowanz hellaswag jsonl: preprocess(activity_label + ": " + ctx_a + " " +
     * ctx_b.capitalize()); expected from CPython */
    const char *p = tmp_file("hs.jsonl", "{\"activity_label\": \"Baking cookies\", \"ctx_a\": "
                                         "\"A woman is in a kitchen.\", \"ctx_b\": \"she USES a "
                                         "bowl\", \"endings\": [\"[step] mixes [title] flour.\", "
                                         "\"b\", \"c\", \"d\"], \"label\": \"2\"}\n");
    struct task_set ts;
    T_EQ_INT(task_load(&ts, TASK_HELLASWAG, NULL, p), 0);
    if (ts.n_docs == 1) {
        T_EQ_STR(ts.docs[0].context, "Baking cookies: A woman is in a kitchen. She uses a bowl");
        T_EQ_STR(ts.docs[0].choices[0], " mixes. flour.");
        T_EQ_INT(ts.docs[0].gold, 2);
    }
    task_release(&ts);
    /* original WinoGrande rows */
    p = tmp_file("wg.jsonl", "{\"sentence\": \"Ian ate more than Dennis because _ 's hungry.\", "
                             "\"option1\": \"Ian\", \"option2\": \"Dennis\", \"answer\": \"1\"}\n");
    T_EQ_INT(task_load(&ts, TASK_WINOGRANDE, NULL, p), 0);
    if (ts.n_docs == 1) {
        T_EQ_STR(ts.docs[0].choices[1], "Ian ate more than Dennis because Dennis");
        T_EQ_STR(ts.docs[0].continuation, "'s hungry.");
        T_EQ_INT(ts.docs[0].gold, 0);
    }
    task_release(&ts);
    /* OpenBookQA as AI2 jsonl (same fields as ARC): the stem alone, answerKey lstrip'ed */
    p = tmp_file("obqa.jsonl", "{\"question\": {\"stem\": \"Stem\", \"choices\": [{\"text\": "
                               "\"x\", \"label\": \"A\"}, {\"text\": \"y\", \"label\": \"B\"}]}, "
                               "\"answerKey\": \" B\"}\n");
    T_EQ_INT(task_load(&ts, TASK_OPENBOOKQA, NULL, p), 0);
    if (ts.n_docs == 1) {
        T_EQ_STR(ts.docs[0].context, "Stem");
        T_EQ_INT(ts.docs[0].gold, 1);
    }
    task_release(&ts);
    /* Hugging Face truthful_qa rows */
    p = tmp_file("tqa.json", "[{\"question\": \"Q?\", \"mc1_targets\": {\"choices\": [\"yes\", "
                             "\"no\"], \"labels\": [1, 0]}}]");
    T_EQ_INT(task_load(&ts, TASK_TRUTHFULQA_MC1, NULL, p), 0);
    if (ts.n_docs == 1) T_EQ_STR(ts.docs[0].choices[1], "no");
    task_release(&ts);
    /* wikitext from a CRLF file reads as Python's text mode does */
    p = tmp_file("wt.raw", " \r\n = A = \r\n x , y \r\n = = B = = \r\n z \r\n = C = \r\n w\r\n");
    T_EQ_INT(task_load(&ts, TASK_WIKITEXT, NULL, p), 0);
    T_EQ_INT(ts.n_docs, 2);
    if (ts.n_docs == 2) {
        T_EQ_STR(ts.docs[0].text, " = A =\nx, y\n== B ==\nz "); /* CPython, same file */
        T_EQ_INT(ts.docs[0].bytes, 31); /* " = A = \n x , y \n = = B = = \n z " */
        T_EQ_INT(ts.docs[1].bytes, 11); /* " = C = \n w\n" */
    }
    task_release(&ts);
}

/* ===== tokenization ===== */

static bool ids_are(const int *v, int n, const int *want, int nw) {
    if (n != nw) return false;
    for (int i = 0; i < n; i++)
        if (v[i] != want[i]) return false;
    return true;
}

/* decode ids (each after its predecessor) into one string */
static const char *decode_ids(const struct tokenizer *t, int prev, const int *ids, int n) {
    static char out[4096];
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        char piece[256];
        int k = tokenizer_decode(t, i ? ids[i - 1] : prev, ids[i], piece, sizeof piece);
        if (k < 0 || o + (size_t)k >= sizeof out) return "(decode error)";
        memcpy(out + o, piece, (size_t)k);
        o += (size_t)k;
        out[o] = 0;
    }
    return out;
}

/* every request: ctx = [BOS?] + encode(ctx.rstrip()), ctx + cont = [BOS?] + encode(ctx + cont) */
static void check_split(const struct tokenizer *t, const char *ctx, const char *cont,
                        const struct lm_request *q, bool bos) {
    int *a = NULL, *w = NULL, na = 0, nw = 0;
    size_t nc = py_rstrip_len(ctx, strlen(ctx));
    char *joint = task_concat(ctx, cont, (char *)NULL);
    T_EQ_INT(tokenizer_encode(t, ctx, nc, bos, &a, &na), 0);
    T_EQ_INT(tokenizer_encode(t, joint, strlen(joint), bos, &w, &nw), 0);
    T_OK(ids_are(q->ctx, q->n_ctx, a, na));
    T_EQ_INT(q->n_ctx + q->n_cont, nw);
    T_OK(q->n_cont > 0 && ids_are(q->cont, q->n_cont, w + na, nw - na));
    free(a), free(w), free(joint);
}

static void test_token_splits_llama(void) {
    const char *path = T_DATA("tokenizers/tokenizer.bin");
    struct tokenizer *tok;
    if (!path || tokenizer_load(&tok, path)) return;
    struct task_set ts;
    struct request_set rs;
    /* BoolQ doc 2644 (moved to the front; only it gets requests): ("...?\nAnswer:", " yes"):
     * the context ends <0x0A>=13 "Answer"=22550 ":"=29901, the continuation is "▁yes"=4874
     * (or "▁no"=694) alone */
    if (load_real(&ts, TASK_BOOLQ, "datasets/boolq/val.jsonl")) {
        struct task_doc d0 = ts.docs[2644];
        ts.docs[2644] = ts.docs[0];
        ts.docs[0] = d0;
        int n_all = ts.n_docs;
        ts.n_docs = 1; /* only doc 2644 (now at 0) gets requests */
        T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
        T_EQ_INT(rs.n, 2);
        if (rs.n == 2) {
            const struct lm_request *no = &rs.reqs[0], *yes = &rs.reqs[1];
            T_EQ_INT(yes->doc, 0);
            T_EQ_INT(yes->choice, 1);
            T_OK(no->n_ctx > 3 && no->ctx[no->n_ctx - 3] == 13 &&
                 no->ctx[no->n_ctx - 2] == 22550 && no->ctx[no->n_ctx - 1] == 29901);
            T_OK(ids_are(yes->cont, yes->n_cont, (int[]){4874}, 1));
            T_OK(ids_are(no->cont, no->n_cont, (int[]){694}, 1));
            T_OK(ids_are(no->ctx, no->n_ctx, yes->ctx, yes->n_ctx));
            T_EQ_INT(no->ctx[0], 450); /* "▁The" (dummy prefix + "The") */
            check_split(tok, ts.docs[0].context, " yes", yes, false);
        }
        request_set_release(&rs);
        /* add_bos: BOS (1) first, then the same ids; the continuation does not move */
        T_EQ_INT(task_build_requests(&ts, tok, true, &rs), 0);
        T_OK(rs.add_bos);
        if (rs.n == 2) {
            T_EQ_INT(rs.reqs[1].ctx[0], 1);
            T_EQ_INT(rs.reqs[1].ctx[1], 450);
            T_OK(ids_are(rs.reqs[1].cont, rs.reqs[1].n_cont, (int[]){4874}, 1));
            check_split(tok, ts.docs[0].context, " yes", &rs.reqs[1], true);
        }
        request_set_release(&rs);
        ts.n_docs = n_all;
        task_release(&ts);
    }
    /* MMLU doc 1190: "...\nAnswer:" + " D" -> "▁D" alone; " A" = "▁A" = 319 */
    if (load_real(&ts, TASK_MMLU, "datasets/mmlu/test/college_mathematics_test.csv")) {
        struct task_doc d = ts.docs[1190];
        ts.docs[1190] = ts.docs[0];
        ts.docs[0] = d;
        int n_all = ts.n_docs;
        ts.n_docs = 1;
        T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
        T_EQ_INT(rs.n, 4);
        if (rs.n == 4) {
            T_OK(ids_are(rs.reqs[0].cont, rs.reqs[0].n_cont, (int[]){319}, 1));
            T_EQ_INT(rs.reqs[0].ctx[rs.reqs[0].n_ctx - 1], 29901);
            T_EQ_STR(decode_ids(tok, 29901, rs.reqs[3].cont, rs.reqs[3].n_cont), " D");
        }
        request_set_release(&rs);
        ts.n_docs = n_all;
        task_release(&ts);
    }
    /* WinoGrande doc 0: context "... so Sarah", continuation " always got the easier cases." */
    if (load_real(&ts, TASK_WINOGRANDE, "datasets/winogrande/winogrande.jsonl")) {
        int n_all = ts.n_docs;
        ts.n_docs = 1;
        T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
        T_EQ_INT(rs.n, 2);
        if (rs.n == 2) {
            static const int cont[] = {2337, 2355, 278, 6775, 4251, 29889};
            T_OK(ids_are(rs.reqs[0].cont, rs.reqs[0].n_cont, cont, 6));
            T_OK(ids_are(rs.reqs[1].cont, rs.reqs[1].n_cont, cont, 6));
            T_EQ_INT(rs.reqs[0].ctx[rs.reqs[0].n_ctx - 1], 19235); /* "▁Sarah" */
            T_EQ_INT(rs.reqs[1].ctx[rs.reqs[1].n_ctx - 1], 6217);  /* "▁Maria" */
            check_split(tok, ts.docs[0].choices[1], " always got the easier cases.", &rs.reqs[1],
                        false);
        }
        request_set_release(&rs);
        ts.n_docs = n_all;
        task_release(&ts);
    }
    /* LAMBADA doc 0: " signs" = 18906 */
    if (load_real(&ts, TASK_LAMBADA, "datasets/lambada/lambada_test.jsonl")) {
        int n_all = ts.n_docs;
        ts.n_docs = 1;
        T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
        if (rs.n == 1) T_OK(ids_are(rs.reqs[0].cont, rs.reqs[0].n_cont, (int[]){18906}, 1));
        request_set_release(&rs);
        ts.n_docs = n_all;
        task_release(&ts);
    }
    /* a context ending in a space: the space moves to the continuation. Context tokens are
     * "▁The ▁capital ▁of ▁France ▁is" (no trailing lone "▁" = 29871), the continuation decodes
     * to the two spaces and "Paris" */
    struct task_doc d = {.context = "The capital of France is ", .continuation = "Paris",
                         .gold = -1};
    struct task_set one = {.id = TASK_LAMBADA, .docs = &d, .n_docs = 1};
    T_EQ_INT(task_build_requests(&one, tok, false, &rs), 0);
    if (rs.n == 1) {
        const struct lm_request *q = &rs.reqs[0];
        T_OK(ids_are(q->ctx, q->n_ctx, (int[]){450, 7483, 310, 3444, 338}, 5));
        T_EQ_STR(decode_ids(tok, 338, q->cont, q->n_cont), "  Paris");
        check_split(tok, d.context, " Paris", q, false);
    }
    request_set_release(&rs);
    /* an empty context: [EOS] (lm-eval <= 0.4.9's eot_token_id) or [BOS] with add_bos
     * (prefix_token_id, lm-eval >= 0.4.10); the continuation is encoded alone */
    d.context = "";
    d.continuation = "Paris";
    T_EQ_INT(task_build_requests(&one, tok, false, &rs), 0);
    if (rs.n == 1) {
        T_OK(ids_are(rs.reqs[0].ctx, rs.reqs[0].n_ctx, (int[]){2}, 1));
        /* "▁" "▁Paris" */
        T_OK(ids_are(rs.reqs[0].cont, rs.reqs[0].n_cont, (int[]){29871, 3681}, 2));
    }
    request_set_release(&rs);
    T_EQ_INT(task_build_requests(&one, tok, true, &rs), 0);
    if (rs.n == 1) T_OK(ids_are(rs.reqs[0].ctx, rs.reqs[0].n_ctx, (int[]){1}, 1));
    request_set_release(&rs);
    /* ROLLING: one request per page, n_ctx 0, cont = the page's tokens (BOS first with add_bos) */
    struct task_doc pg = {.text = "Robert Boulter is an English film", .words = 6, .bytes = 33};
    struct task_set wt = {.id = TASK_WIKITEXT, .docs = &pg, .n_docs = 1};
    T_EQ_INT(task_build_requests(&wt, tok, true, &rs), 0);
    if (rs.n == 1) {
        T_EQ_INT(rs.reqs[0].n_ctx, 0);
        T_EQ_INT(rs.reqs[0].cont[0], 1);
        T_EQ_STR(decode_ids(tok, 1, rs.reqs[0].cont + 1, rs.reqs[0].n_cont - 1),
                 "Robert Boulter is an English film");
    }
    request_set_release(&rs);
    tokenizer_free(tok);
}

static void test_token_splits_tok512(void) {
    const char *path = T_DATA("tokenizers/tok512.bin");
    struct tokenizer *tok;
    if (!path || tokenizer_load(&tok, path)) return;
    /* stories260K's 512-piece vocab has no "▁yes": the continuation is several pieces, all of
     * them after the context's ":" (467) */
    struct task_doc d = {.context = "Is the cat happy?\nAnswer:", .n_choices = 2, .gold = 1};
    char *ch[2] = {"no", "yes"};
    d.choices = ch;
    struct task_set ts = {.id = TASK_BOOLQ, .docs = &d, .n_docs = 1};
    struct request_set rs;
    T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
    T_EQ_INT(rs.n, 2);
    if (rs.n == 2) {
        T_EQ_INT(rs.reqs[1].ctx[rs.reqs[1].n_ctx - 1], 467);
        T_OK(rs.reqs[1].n_cont > 1);
        T_EQ_STR(decode_ids(tok, 467, rs.reqs[1].cont, rs.reqs[1].n_cont), " yes");
        check_split(tok, d.context, " yes", &rs.reqs[1], false);
        check_split(tok, d.context, " no", &rs.reqs[0], false);
    }
    request_set_release(&rs);
    /* a context with trailing spaces and a newline: all Python whitespace moves */
    d.context = "Once upon a time \n ";
    T_EQ_INT(task_build_requests(&ts, tok, false, &rs), 0);
    if (rs.n == 2) {
        check_split(tok, d.context, " yes", &rs.reqs[1], false);
        T_EQ_STR(decode_ids(tok, rs.reqs[1].ctx[rs.reqs[1].n_ctx - 1], rs.reqs[1].cont,
                            rs.reqs[1].n_cont),
                 " \n  yes");
    }
    request_set_release(&rs);
    tokenizer_free(tok);
}

/* ===== metrics ===== */

static struct lm_request req(int doc, int choice, double ll, bool greedy) {
    return (struct lm_request){.doc = doc, .choice = choice, .loglik = ll, .greedy = greedy};
}

static const struct metric_value *metric(const struct task_result *r, const char *name) {
    for (int i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->m[i].name, name)) return &r->m[i];
    return NULL;
}

static void test_metrics_mc(void) {
    /* choices whose character and byte lengths differ: "é" is 1 character, 2 bytes */
    char *c0[] = {"\xc3\xa9", "ab"}, *c1[] = {"x", "y", "z"}, *c2[] = {"aaaa", "b"},
         *c3[] = {"p", "q"};
    struct task_doc docs[4] = {
        {.context = "c", .choices = c0, .n_choices = 2, .gold = 1},
        {.context = "c", .choices = c1, .n_choices = 3, .gold = 0},
        {.context = "c", .choices = c2, .n_choices = 2, .gold = 0},
        {.context = "c", .choices = c3, .n_choices = 2, .gold = 0},
    };
    struct task_set ts = {.id = TASK_ARC_EASY, .docs = docs, .n_docs = 4};
    struct lm_request q[] = {
        /* doc 0: acc picks 0 (-1 > -1.5); acc_norm: -1/1 < -1.5/2 -> 1 (by bytes it'd be 0) */
        req(0, 0, -1.0, 0), req(0, 1, -1.5, 0),
        /* doc 1: a tie goes to the lowest index (np.argmax) */
        req(1, 2, -3.0, 0), req(1, 0, -2.0, 0), req(1, 1, -2.0, 0),
        /* doc 2: acc picks 1; acc_norm -2/4 > -1/1 -> 0 */
        req(2, 0, -2.0, 0), req(2, 1, -1.0, 0),
        req(3, 1, -0.7, 0), req(3, 0, -0.5, 0),
    };
    struct request_set rs = {.reqs = q, .n = (int)LB_ARRAY_LEN(q)};
    struct task_result r;
    T_EQ_INT(task_metrics(&ts, &rs, &r), 0);
    const struct metric_value *acc = metric(&r, "acc"), *norm = metric(&r, "acc_norm");
    T_OK(acc && norm);
    if (acc && norm) {
        /* acc items [0, 1, 0, 1]: mean 0.5, sample std sqrt(1/3), stderr sqrt(1/3)/2 */
        T_NEAR(acc->value, 0.5, 1e-15);
        T_NEAR(acc->stderr_, 0.28867513459481287, 1e-15);
        T_NEAR(norm->value, 1.0, 1e-15);
        T_NEAR(norm->stderr_, 0.0, 1e-15);
    }
    T_EQ_INT(r.n_docs, 4);
    task_result_release(&r);
    /* winogrande reports acc only */
    ts.id = TASK_WINOGRANDE;
    docs[1].n_choices = 2;
    struct lm_request q2[] = {req(0, 0, -1, 0), req(0, 1, -2, 0), req(1, 0, -1, 0),
                              req(1, 1, -2, 0), req(2, 0, -1, 0), req(2, 1, -2, 0),
                              req(3, 0, -1, 0), req(3, 1, -2, 0)};
    rs = (struct request_set){.reqs = q2, .n = 8};
    T_EQ_INT(task_metrics(&ts, &rs, &r), 0);
    T_EQ_INT(r.n_metrics, 1);
    T_NEAR(metric(&r, "acc") ? metric(&r, "acc")->value : -1, 0.75, 1e-15);
    task_result_release(&r);
    /* a missing or duplicate request is an error */
    err_set_quiet(true);
    rs.n = 7;
    T_ERR(task_metrics(&ts, &rs, &r));
    T_CONTAINS(err_last(), "no scored request for doc 3 choice 1");
    q2[7] = req(3, 0, -1, 0);
    rs.n = 8;
    T_ERR(task_metrics(&ts, &rs, &r));
    T_CONTAINS(err_last(), "two requests for doc 3 choice 0");
    err_set_quiet(false);
}

static void test_metrics_lambada(void) {
    struct task_doc docs[3] = {{.context = "a", .continuation = "b", .gold = -1},
                               {.context = "a", .continuation = "b", .gold = -1},
                               {.context = "a", .continuation = "b", .gold = -1}};
    struct task_set ts = {.id = TASK_LAMBADA, .docs = docs, .n_docs = 3};
    struct lm_request q[] = {req(0, 0, -1.0, 1), req(1, 0, -2.0, 0), req(2, 0, -3.0, 1)};
    struct request_set rs = {.reqs = q, .n = 3};
    struct task_result r;
    T_EQ_INT(task_metrics(&ts, &rs, &r), 0);
    const struct metric_value *ppl = metric(&r, "perplexity"), *acc = metric(&r, "acc");
    T_OK(ppl && acc && r.m[0].name == ppl->name); /* lm-eval's order: perplexity, acc */
    if (ppl && acc) {
        T_NEAR(ppl->value, 7.38905609893065, 1e-12); /* exp(2) */
        /* CPython 3.11: bootstrap_stderr(perplexity, [-1, -2, -3], 100000) */
        T_NEAR(ppl->stderr_, 3.973436005477724, 1e-12);
        T_NEAR(acc->value, 2.0 / 3.0, 1e-15);
        T_NEAR(acc->stderr_, 0.33333333333333337, 1e-15);
    }
    task_result_release(&r);
    /* the bootstrap itself, same reference */
    const double xs[] = {-1.5, -0.25, -3.0, -0.75, -2.0, -0.125, -4.5, -1.0, -0.5, -2.5};
    T_NEAR(task_bootstrap_perplexity_stderr(xs, 10, 100000), 2.558596176916999, 1e-12);
    T_NEAR(task_bootstrap_perplexity_stderr(xs, 3, 2000), 4.157662860698969, 1e-12);
    T_OK(isnan(task_bootstrap_perplexity_stderr(xs, 1, 100000)));
}

static void test_metrics_mmlu(void) {
    /* abstract_algebra (stem) acc [1,1,1,0], anatomy (stem) [0,0], philosophy (humanities)
     * [1,0]: micro = 4/8 = 0.5, macro would be (0.75 + 0 + 0.5)/3 = 0.41667 */
    static char *abcd[] = {"A", "B", "C", "D"};
    static const char *subj[8] = {"abstract_algebra", "philosophy", "abstract_algebra", "anatomy",
                                  "abstract_algebra", "anatomy", "philosophy", "abstract_algebra"};
    static const int right[8] = {1, 1, 1, 0, 1, 0, 0, 0};
    struct task_doc docs[8];
    struct lm_request q[32];
    for (int i = 0; i < 8; i++) {
        docs[i] = (struct task_doc){.context = "c", .choices = abcd, .n_choices = 4, .gold = 2,
                                    .subject = (char *)subj[i]};
        for (int j = 0; j < 4; j++) q[4 * i + j] = req(i, j, j == (right[i] ? 2 : 3) ? -1 : -2, 0);
    }
    struct task_set ts = {.id = TASK_MMLU, .docs = docs, .n_docs = 8};
    struct request_set rs = {.reqs = q, .n = 32};
    struct task_result r;
    T_EQ_INT(task_metrics(&ts, &rs, &r), 0);
    T_EQ_INT(r.n_metrics, 1);
    T_EQ_STR(r.m[0].name, "acc");
    T_NEAR(r.m[0].value, 0.5, 1e-15);
    /* pooled_sample_stderr, subjects -> stem/humanities -> mmlu (CPython reference) */
    T_NEAR(r.m[0].stderr_, 0.17305466381079324, 1e-15);
    T_EQ_INT(r.n_subjects, 3);
    if (r.n_subjects == 3) {
        T_EQ_STR(r.subjects[0].name, "abstract_algebra");
        T_NEAR(r.subjects[0].acc, 0.75, 1e-15);
        T_EQ_INT(r.subjects[0].n, 4);
        T_EQ_STR(r.subjects[1].name, "anatomy");
        T_NEAR(r.subjects[1].acc, 0.0, 1e-15);
        T_EQ_STR(r.subjects[2].name, "philosophy");
        T_NEAR(r.subjects[2].acc, 0.5, 1e-15);
        double macro = (r.subjects[0].acc + r.subjects[1].acc + r.subjects[2].acc) / 3;
        T_OK(fabs(macro - r.m[0].value) > 0.08);
    }
    task_result_release(&r);
}

static void test_metrics_wikitext(void) {
    struct task_doc docs[2] = {{.text = "x", .words = 10, .bytes = 50},
                               {.text = "y", .words = 20, .bytes = 70}};
    struct task_set ts = {.id = TASK_WIKITEXT, .docs = docs, .n_docs = 2};
    struct lm_request q[] = {req(0, 0, -30.0, 0), req(1, 0, -60.0, 0)};
    struct request_set rs = {.reqs = q, .n = 2};
    struct task_result r;
    T_EQ_INT(task_metrics(&ts, &rs, &r), 0);
    T_EQ_INT(r.n_metrics, 3);
    const struct metric_value *w = metric(&r, "word_perplexity");
    const struct metric_value *b = metric(&r, "byte_perplexity");
    const struct metric_value *bpb = metric(&r, "bits_per_byte");
    if (w && b && bpb) {
        T_NEAR(w->value, 20.085536923187668, 1e-12); /* exp(90/30) */
        T_NEAR(b->value, 2.117000016612675, 1e-12);  /* exp(90/120) */
        T_NEAR(bpb->value, 1.0820212806667227, 1e-12); /* 0.75/ln 2 */
        T_OK(isnan(w->stderr_));
    } else
        T_OK(0);
    task_result_release(&r);
}

/* ===== task_limit ===== */

static void test_limit(void) {
    struct task_set a, b, full;
    if (!load_real(&full, TASK_ARC_EASY, "datasets/arc/ARC-Easy-Test.jsonl")) return;
    T_EQ_INT(task_load(&a, TASK_ARC_EASY, NULL, NULL), 0);
    T_EQ_INT(task_load(&b, TASK_ARC_EASY, NULL, NULL), 0);
    task_limit(&a, 100, 1234);
    task_limit(&b, 100, 1234);
    T_EQ_INT(a.n_docs, 100);
    bool same = a.n_docs == b.n_docs;
    for (int i = 0; same && i < a.n_docs; i++) same = !strcmp(a.docs[i].context, b.docs[i].context);
    T_OK(same);
    /* original order kept: each kept doc appears later in the full set than the previous */
    int at = -1;
    bool ordered = true;
    for (int i = 0; i < a.n_docs && ordered; i++) {
        int j = at + 1;
        while (j < full.n_docs && strcmp(full.docs[j].context, a.docs[i].context)) j++;
        ordered = j < full.n_docs;
        at = j;
    }
    T_OK(ordered);
    task_release(&b);
    /* another seed, another sample; a larger n keeps a superset */
    T_EQ_INT(task_load(&b, TASK_ARC_EASY, NULL, NULL), 0);
    task_limit(&b, 100, 99);
    int common = 0;
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < 100; j++) common += !strcmp(a.docs[i].context, b.docs[j].context);
    T_OK(common < 50);
    task_release(&b);
    T_EQ_INT(task_load(&b, TASK_ARC_EASY, NULL, NULL), 0);
    task_limit(&b, 300, 1234);
    int found = 0;
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < 300; j++)
            if (!strcmp(a.docs[i].context, b.docs[j].context)) {
                found++;
                break;
            }
    T_EQ_INT(found, 100);
    task_limit(&b, 5000, 1); /* n >= n_docs keeps all */
    T_EQ_INT(b.n_docs, 300);
    task_limit(&b, 0, 1);
    T_EQ_INT(b.n_docs, 0);
    task_release(&a);
    task_release(&b);
    task_release(&full);
}

/* ===== registry ===== */

static void test_registry(void) {
    T_EQ_INT(task_from_name("arc_challenge"), TASK_ARC_CHALLENGE);
    T_EQ_INT(task_from_name("arc:challenge"), TASK_ARC_CHALLENGE);
    T_EQ_INT(task_from_name("truthfulqa:mc1"), TASK_TRUTHFULQA_MC1);
    T_EQ_INT(task_from_name("HellaSwag"), TASK_HELLASWAG);
    T_EQ_INT(task_from_name("lambada_openai"), TASK_LAMBADA);
    T_EQ_INT(task_from_name("nope"), -1);
    T_EQ_STR(task_get(TASK_ARC_CHALLENGE)->label, "ARC-c");
    T_EQ_STR(task_get(TASK_HELLASWAG)->metrics, "acc,acc_norm");
    T_EQ_STR(task_get(TASK_LAMBADA)->metrics, "perplexity,acc");
    T_EQ_INT(task_get(TASK_WINOGRANDE)->kind, TASK_KIND_MC_CONTEXTS);
    T_OK(task_get(TASK_COUNT) == NULL);
}

/* ===== malformed input ===== */

/* the load fails with one message naming "file:line" and containing what */
static void bad(enum task_id id, const char *name, const char *text, const char *where,
                const char *what) {
    const char *p = tmp_file(name, text);
    struct task_set ts;
    err_set_quiet(true);
    int rc = task_load(&ts, id, NULL, p);
    err_set_quiet(false);
    T_ERR(rc);
    char loc[600];
    snprintf(loc, sizeof loc, "%s%s", p, where);
    T_CONTAINS(err_last(), loc);
    T_CONTAINS(err_last(), what);
    T_OK(!strchr(err_last(), '\n'));
    T_EQ_INT(ts.n_docs, 0);
    T_OK(ts.docs == NULL);
}

static void test_malformed(void) {
    const char *arc_ok = "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", "
                         "\"label\": \"A\"}, {\"text\": \"b\", \"label\": \"B\"}]}, "
                         "\"answerKey\": \"A\"}\n";
    char two[1024];
    snprintf(two, sizeof two, "%s\n%s{\"question\": \n", arc_ok, arc_ok);
    bad(TASK_ARC_EASY, "arc1.jsonl", two, ":4:", "bad JSON");
    bad(TASK_ARC_EASY, "arc2.jsonl",
        "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}}\n",
        ":1:", "\"answerKey\"");
    bad(TASK_ARC_EASY, "arc3.jsonl",
        "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, "
        "\"answerKey\": \"E\"}\n",
        ":1:", "answerKey \"E\" is not one of the choice labels");
    bad(TASK_ARC_EASY, "arc4.jsonl",
        "{\"question\": {\"stem\": \"q\", \"choices\": []}, \"answerKey\": \"A\"}\n", ":1:",
        "no choices");
    bad(TASK_ARC_EASY, "arc5.jsonl", "[1, 2]\n", ":1:", "JSON object per line");
    bad(TASK_BOOLQ, "bq.jsonl", "{\"passage\": \"p\", \"question\": \"q\", \"label\": \"maybe\"}\n",
        ":1:", "\"label\" must be true/false");
    bad(TASK_BOOLQ, "bq2.jsonl", "{\"passage\": \"p\", \"label\": true}\n", ":1:",
        "missing field \"question\"");
    bad(TASK_HELLASWAG, "hs.txt", "Label: ctx\n7\na\nb\nc\nd\n", ":2:", "gold label \"7\"");
    bad(TASK_HELLASWAG, "hs2.txt", "Label: ctx\n1\na\nb\n", ":4:", "ends inside a task");
    bad(TASK_HELLASWAG, "hs3.txt", "no colon here\n1\na\nb\nc\nd\n", ":1:", "activity label");
    bad(TASK_LAMBADA, "lb.jsonl", "{\"text\": \"a b\"}\n{\"txt\": \"a b\"}\n", ":2:",
        "missing field \"text\"");
    bad(TASK_MMLU, "m_test.csv",
        "question,choice0,choice1,choice2,choice3,answer\n\"q1\",a,b,c,d,0\n\"q2\",a,b,c,1\n",
        ":3:", "5 columns, expected 6");
    bad(TASK_MMLU, "m2_test.csv", "\"q1\",a,b,c,d,E\n", ":1:", "answer \"E\"");
    bad(TASK_MMLU, "m3_test.csv", "\"q1\nstill q1\",a,b,c,d,0\n\"q2\"x,a,b,c,d,0\n", ":3:", "CSV");
    bad(TASK_MMLU, "m4_test.csv", "\"q1,a,b,c,d,0\n", ":1:", "ends inside a quoted field");
    bad(TASK_OPENBOOKQA, "ob.tsv", "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
                                   "1\tq\t(A) a (B) b\tq\n",
        ":2:", "4 tab-separated columns");
    bad(TASK_OPENBOOKQA, "ob2.tsv", "1\tq\t(A) a (B) b\tq\tC\n", ":1:", "answer key \"C\"");
    bad(TASK_PIQA, "pq.jsonl",
        "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 3}\n", ":1:",
        "\"label\" must be 0 or 1");
    bad(TASK_TRUTHFULQA_MC1, "tq.json",
        "[\n {\"question\": \"q\", \"mc1_targets\": {\"a\": 1, \"b\": 0}},\n"
        " {\"question\": \"q\",\n  \"mc1_targets\": {\"a\": 0, \"b\": 1}}\n]\n",
        ":3:", "exactly one answer labelled 1, first");
    bad(TASK_TRUTHFULQA_MC1, "tq2.json", "[\n {\"question\": \"q\",\n \"mc1_targets\": {\"a\" 1}}]",
        ":3:", "bad JSON");
    bad(TASK_TRUTHFULQA_MC1, "tq3.json", "[{\"question\": \"q\"}]", ":1:", "\"mc1_targets\"");
    bad(TASK_WINOGRANDE, "wg.jsonl", "{\"context_options\": [\"a\"], \"continuation\": \"c\", "
                                     "\"gold\": 0}\n",
        ":1:", "context_options");
    bad(TASK_WINOGRANDE, "wg2.jsonl", "{\"sentence\": \"no blank\", \"option1\": \"a\", "
                                      "\"option2\": \"b\", \"answer\": \"1\"}\n",
        ":1:", "no \"_\" blank");
    bad(TASK_WIKITEXT, "wt.raw", " = A = \n ok \n bad \xff byte\n", ":3:", "not UTF-8");
    /* PIQA's labels file: out of range, wrong count */
    tmp_file("pq2-labels.lst", "0\n1\n");
    bad(TASK_PIQA, "pq2.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n",
        "", "2 labels for the 1 questions");
    /* (the message names the labels file and its line) */
    tmp_file("pq3-labels.lst", "0\n2\n");
    const char *pq3 = tmp_file("pq3.jsonl",
                               "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
                               "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
    struct task_set ts;
    err_set_quiet(true);
    T_ERR(task_load(&ts, TASK_PIQA, NULL, pq3));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "pq3-labels.lst:2: label \"2\", expected an integer 0..1");
    /* a missing default file names the file and LOWBIT_DATA */
    err_set_quiet(true);
    T_ERR(task_load(&ts, TASK_BOOLQ, "/nonexistent/data", NULL));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "/nonexistent/data/datasets/boolq/val.jsonl");
    T_CONTAINS(err_last(), "LOWBIT_DATA");
    /* a truncated default file fails the count check */
    char dir[512], cmd[1200];
    snprintf(dir, sizeof dir, "%s/data", t_tmpdir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/datasets/boolq && head -n 5 %s/datasets/boolq/val.jsonl > "
             "%s/datasets/boolq/val.jsonl",
             dir, getenv("LOWBIT_DATA") ? getenv("LOWBIT_DATA") : "../shared/data", dir);
    if (!system(cmd)) {
        err_set_quiet(true);
        T_ERR(task_load(&ts, TASK_BOOLQ, dir, NULL));
        err_set_quiet(false);
        T_CONTAINS(err_last(), "5 documents, expected lm-eval's 3270 for boolq");
    }
}

int main(void) {
    T_RUN(test_sha256_fips);
    T_RUN(test_registry);
    T_RUN(test_counts_and_sha);
    T_RUN(test_arc_docs);
    T_RUN(test_boolq_docs);
    T_RUN(test_hellaswag_docs);
    T_RUN(test_lambada_docs);
    T_RUN(test_mmlu_docs);
    T_RUN(test_openbookqa_docs);
    T_RUN(test_piqa_docs);
    T_RUN(test_truthfulqa_docs);
    T_RUN(test_winogrande_docs);
    T_RUN(test_wikitext_docs);
    T_RUN(test_text_helpers);
    T_RUN(test_other_layouts);
    T_RUN(test_token_splits_llama);
    T_RUN(test_token_splits_tok512);
    T_RUN(test_metrics_mc);
    T_RUN(test_metrics_lambada);
    T_RUN(test_metrics_mmlu);
    T_RUN(test_metrics_wikitext);
    T_RUN(test_limit);
    T_RUN(test_malformed);
    return T_DONE();
}
