// tests/tok_hf_ref.mjs: reference token ids from Hugging Face's JS tokenizers
// (@huggingface/transformers) for tests/test_tokenizer_hf.c.
//
//   node tests/tok_hf_ref.mjs NPM_DIR TEXTS.json OUT.json NAME=TOKENIZER_DIR...
//
// NPM_DIR holds node_modules/@huggingface/transformers; TEXTS.json is an array of strings. For
// each tokenizer OUT.json gets {"without": ids per text (encode(text, {add_special_tokens:
// false})), "with": ids per text as transformers (Python) encodes with add_special_tokens=True,
// "js_with_differs": how many "with" lists transformers.js's own encode(text) gives otherwise}.
//
// "with": transformers.js applies the tokenizer.json's post_processor as it is. Python
// transformers (what lm-evaluation-harness runs) does too, except that LlamaTokenizerFast,
// GemmaTokenizerFast and CodeLlamaTokenizerFast rebuild it when they load (update_post_processor):
// [bos_token if add_bos_token (default true)] + text + [eos_token if add_eos_token (default
// false)] from tokenizer_config.json. That rule is applied here on top of the JS ids (it matters
// for DeepSeek-V3, whose tokenizer.json has no template but whose config asks for BOS).
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [npmDir, textsPath, outPath, ...specs] = process.argv.slice(2);
const require = createRequire(path.resolve(npmDir, 'package.json'));
const { AutoTokenizer, env } = await import(
    pathToFileURL(require.resolve('@huggingface/transformers')).href);
env.allowRemoteModels = false;
env.allowLocalModels = true;

const texts = JSON.parse(readFileSync(textsPath, 'utf8'));
const out = {};
for (const spec of specs) {
    const eq = spec.indexOf('=');
    const name = spec.slice(0, eq), dir = path.resolve(spec.slice(eq + 1));
    env.localModelPath = path.dirname(dir) + '/';
    const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : {};
    const cls = (cfg.tokenizer_class ?? '').replace(/Fast$/, '');
    const rebuilds = ['LlamaTokenizer', 'GemmaTokenizer', 'CodeLlamaTokenizer'].includes(cls);
    const tokName = (v) => (v && typeof v === 'object' ? v.content : v);
    const idOf = (s) => {
        const ids = tok.encode(s, { add_special_tokens: false });
        if (ids.length !== 1) throw new Error(`${name}: "${s}" is not one token`);
        return ids[0];
    };
    const pre = [], post = [];
    if (rebuilds) {
        if (cfg.add_bos_token ?? true) pre.push(idOf(tokName(cfg.bos_token)));
        if (cfg.add_eos_token ?? false) post.push(idOf(tokName(cfg.eos_token)));
    }
    const r = { without: [], with: [], js_with_differs: 0 };
    for (const t of texts) {
        const without = tok.encode(t, { add_special_tokens: false });
        const jsWith = tok.encode(t);
        const withIds = rebuilds ? [...pre, ...without, ...post] : jsWith;
        if (withIds.length !== jsWith.length || withIds.some((v, i) => v !== jsWith[i]))
            r.js_with_differs++;
        r.without.push(without);
        r.with.push(withIds);
    }
    out[name] = r;
}
writeFileSync(outPath, JSON.stringify(out));
