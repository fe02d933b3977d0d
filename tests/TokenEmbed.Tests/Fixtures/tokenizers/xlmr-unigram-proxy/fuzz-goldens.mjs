// Random-text goldens for the xlmr-unigram-proxy tokenizers (both layouts), from Hugging Face tokenizers (Rust 0.22.2)
// through @anush008/tokenizers@0.6.0. Usage: npm install --no-save @anush008/tokenizers@0.6.0 && node fuzz-goldens.mjs
// Writes goldens.fuzz.json beside this script (600 texts by default; argument 1 = count, argument 2 = output file).
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@anush008/tokenizers";
const FIX = dirname(fileURLToPath(import.meta.url));
let seed = 4242;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const pick = (a) => a[Math.floor(rnd() * a.length)];
const ranges = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x61, 0x7a], [0x61, 0x7a], [0x41, 0x5a],
  [0x00, 0x1f], [0x7f, 0xa0], [0xa0, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
  [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x1e00, 0x1eff], [0x2000, 0x206f], [0x2070, 0x22ff],
  [0x2460, 0x24ff], [0x3000, 0x30ff], [0x3190, 0x33ff], [0x4e00, 0x4e80], [0xac00, 0xac40], [0xf900, 0xfaff],
  [0xe000, 0xe010], [0xfb00, 0xfb4f], [0xfe00, 0xfe6f], [0xff00, 0xffef], [0xfff0, 0xfffd],
  [0x1d400, 0x1d7ff], [0x1f100, 0x1f64f], [0x1f900, 0x1faff], [0x20000, 0x20010], [0xe0000, 0xe007f],
  [0x2f800, 0x2fa1f], [0x1ab0, 0x1aff], [0x10fffd, 0x10fffd],
];
const words = ["<s>", "</s>", "<mask>", " <mask>", "<pad>", "<unk>", "<s", "s>", "hello", "Hello", " ", "  ", "   ", "\t", "\n", "\r\n",
  "\u00a0", "\u3000", "\u2581", "\u2581\u2581", "A\u0302\u0300", "e\u0301", "e\u0301\u0301", "a\u0308\u0304", "\u1100\u1161\u11a8",
  "👨\u200d👩\u200d👧", "👍🏽", "🇫🇷", "❤️", "\u200d", "\u200b", "\ufeff", "\u00ad", "ﬁ", "①", "™", "½", "㎏", "Ⅻ", "ｶﾀｶﾅ",
  "the", " the ", "world", "résumé", "İstanbul", "straße", "ΣΊΣΥΦΟΣ", "a".repeat(40), "中文", "x😀".repeat(5), "don't", "state-of-the-art"];
function randText() {
  const n = Math.floor(rnd() * 12) + 1;
  let s = "";
  for (let i = 0; i < n; i++) {
    if (rnd() < 0.5) { s += pick(words); continue; }
    const [a, b] = pick(ranges);
    const len = Math.floor(rnd() * 6) + 1;
    for (let j = 0; j < len; j++) s += String.fromCodePoint(a + Math.floor(rnd() * (b - a + 1)));
  }
  return s;
}
const N = +(process.argv[2] || 600);
const texts = [];
for (let i = 0; i < N; i++) texts.push(randText());
const out = { generator: "fuzz-goldens.mjs", seed: 4242, versions: { "@anush008/tokenizers": "0.6.0", "tokenizers (Rust crate)": "0.22.2" }, settings: { truncation: "disabled", padding: "disabled" }, layouts: {} };
for (const [name, file] of [["current", "tokenizer.json"], ["legacy", "tokenizer.legacy.json"]]) {
  const tok = await Tokenizer.fromFile(FIX + "/" + file);
  const cases = [];
  for (const t of texts) {
    const ids = Array.from((await tok.encode(t, null, { addSpecialTokens: true })).getIds());
    const plain = Array.from((await tok.encode(t, null, { addSpecialTokens: false })).getIds());
    cases.push({ text: t, ids, ids_no_special: plain });
  }
  out.layouts[name] = cases;
}
writeFileSync(process.argv[3] || join(FIX, "goldens.fuzz.json"), JSON.stringify(out));
console.log("wrote", N);
