// Encodes fuzz_texts.json (from gen.py) with Hugging Face tokenizers and writes ../<fixture>/goldens.fuzz.json.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const { Tokenizer } = require("@anush008/tokenizers");
const { seed, texts } = JSON.parse(readFileSync("fuzz_texts.json", "utf8"));
for (const fixture of ["modernbert", "qwen3"]) {
  const tok = Tokenizer.fromFile(`../${fixture}/tokenizer.json`);
  const cases = [];
  for (const [i, text] of texts.entries()) {
    const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    cases.push({ name: `fuzz-${i}`, text, ids: Array.from(withSpecial.getIds()), ids_no_special: Array.from(plain.getIds()) });
  }
  const doc = {
    generator: "hf-reference/gen.py (texts) + hf-reference/fuzz.mjs (ids)", seed,
    versions: { "@anush008/tokenizers": "0.6.0", "tokenizers (Rust crate)": "0.22.2" },
    settings: { truncation: "disabled", padding: "disabled" }, cases,
  };
  writeFileSync(`../${fixture}/goldens.fuzz.json`, JSON.stringify(doc));
}
