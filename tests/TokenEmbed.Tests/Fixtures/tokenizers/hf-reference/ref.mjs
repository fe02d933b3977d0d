import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const { Tokenizer } = require("@anush008/tokenizers");
// usage: node ref.mjs cases.json  -> cases: [{json: <tokenizer object or path>, texts: [...]}]
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
for (const c of cases) {
  let tok;
  try {
    tok = typeof c.json === "string" ? Tokenizer.fromFile(c.json) : Tokenizer.fromString(JSON.stringify(c.json));
  } catch (e) { out.push({ name: c.name, error: String(e) }); continue; }
  const res = [];
  for (const t of c.texts) {
    try {
      const e = await tok.encode(t, null, { addSpecialTokens: c.special ?? false });
      res.push({ text: t, ids: Array.from(e.getIds()), tokens: e.getTokens() });
    } catch (e) { res.push({ text: t, error: String(e) }); }
  }
  out.push({ name: c.name, results: res });
}
console.log(JSON.stringify(out, null, 0));
