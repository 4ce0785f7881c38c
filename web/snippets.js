// snippets.js: the copy-paste texts of the Use panel, for one adapter on this server: curl and
// Python's openai client against /v1/chat/completions, Ollama after the Ollama export, and
// llama.cpp with the GGUF exports. Pure text; the panel shows them with a copy button each.

// snippets({origin, skill, version, type}) -> [{id, title, lang, text, note}]
export function snippets({ origin, skill, version, type }) {
  const model = `${skill}@${version}`;
  const name = `${skill}-${version}`;
  const hello = 'What can you help me with?';
  return [
    {
      id: 'curl', title: 'curl', lang: 'sh',
      note: 'Any OpenAI-compatible client works the same way: this server is its base URL.',
      text: [
        `curl ${origin}/v1/chat/completions \\`,
        '  -H "Content-Type: application/json" \\',
        '  -H "Authorization: Bearer $FASTBRAIN_TOKEN" \\',
        "  -d '{",
        `    "model": "${model}",`,
        `    "messages": [{"role": "user", "content": "${hello}"}]`,
        "  }'",
      ].join('\n'),
    },
    {
      id: 'python', title: 'Python (openai)', lang: 'python',
      note: 'pip install openai. FASTBRAIN_TOKEN is the server\u2019s token (any value when it has none).',
      text: [
        'import os',
        'from openai import OpenAI',
        '',
        'client = OpenAI(',
        `    base_url="${origin}/v1",`,
        '    api_key=os.environ.get("FASTBRAIN_TOKEN", "none"),',
        ')',
        'reply = client.chat.completions.create(',
        `    model="${model}",`,
        `    messages=[{"role": "user", "content": "${hello}"}],`,
        ')',
        'print(reply.choices[0].message.content)',
      ].join('\n'),
    },
    {
      id: 'ollama', title: 'Ollama', lang: 'sh',
      note: 'After the Ollama export above: its download holds the base, the adapter and a Modelfile.',
      text: [
        `tar -xzf ${name}-ollama-${type}.tar.gz`,
        `cd ${skill}`,
        `ollama create ${skill} -f Modelfile`,
        `ollama run ${skill}`,
      ].join('\n'),
    },
    {
      id: 'llama-cpp', title: 'llama.cpp', lang: 'sh',
      note: 'With the GGUF export (one file, the adapter merged in), or the base and adapter GGUFs of the Ollama export.',
      text: [
        '# the GGUF export, as an OpenAI-compatible server:',
        `llama-server -m ${name}-${type}.gguf \\`,
        '  --port 8080',
        '# or the Ollama export\'s base and adapter, as a chat:',
        `llama-cli -m ${skill}/base.gguf \\`,
        `  --lora ${skill}/adapter.gguf -cnv`,
      ].join('\n'),
    },
  ];
}
