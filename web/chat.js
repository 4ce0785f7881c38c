// chat.js: the Use panel's playground: a conversation with one adapter over the server's
// OpenAI-compatible POST /v1/chat/completions, streamed. EventSource cannot POST, so the answer
// is read with fetch and a ReadableStream, one `data:` line at a time; Stop aborts the fetch
// (the server stops the answer when its client goes), Clear starts over.
import { h } from './dom.js';

const MAX_TOKENS = 1024;

// streamChat(body, signal, onDelta(text)) -> {finish_reason}: POSTs body with stream: true and
// calls onDelta with each piece of the answer. Throws an Error with the server's message.
export async function streamChat(body, signal, onDelta) {
  const res = await fetch('/v1/chat/completions', {
    method: 'POST', signal, headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!res.ok) {
    const text = await res.text();
    let message = `HTTP ${res.status}`;
    try { message = JSON.parse(text).error.message || message; } catch { /* not JSON: keep the status */ }
    throw new Error(message);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    const lines = pending.split('\n');
    pending = lines.pop();  // a line the next read completes
    for (const line of lines) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return { finish_reason: finish };
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.delta && choice.delta.content) onDelta(choice.delta.content);
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { finish_reason: finish };
}

// createChat(root) -> {show(adapter), stop()}
export function createChat(root) {
  const log = h('ol.chat-log', { id: 'chat-log', 'aria-live': 'polite', 'aria-label': 'Conversation' });
  const input = h('textarea', { id: 'chat-input', rows: 2, placeholder: 'Ask what a customer would ask\u2026' });
  const send = h('button.primary', { type: 'submit', id: 'chat-send' }, 'Send');
  const stop = h('button', { type: 'button', id: 'chat-stop', hidden: true }, 'Stop');
  const clear = h('button', { type: 'button', id: 'chat-clear' }, 'Clear');
  const temperature = h('input', { id: 'chat-temperature', type: 'range', min: 0, max: 2, step: 0.1, value: 0.7 });
  const shown = h('output', { id: 'chat-temperature-value', for: 'chat-temperature', text: '0.7' });
  const length = h('input', { id: 'chat-max-tokens', type: 'number', min: 1, max: MAX_TOKENS, step: 1, value: 256 });
  const form = h('form.chat-form', {},
    h('label.sr-only', { for: 'chat-input', text: 'Message' }), input,
    h('div.chat-buttons', {}, send, stop, clear));
  root.append(
    h('p.hint', { text: 'The skill\u2019s system prompt is added for you. Each answer appears as it is written.' }),
    log, form,
    h('div.chat-settings', {},
      h('div.setting', {}, h('label', { for: 'chat-temperature' }, 'Creativity: ', shown), temperature,
        h('p.hint', { text: 'Temperature. 0 gives the same answer every time; higher varies more.' })),
      h('div.setting', {}, h('label', { for: 'chat-max-tokens', text: 'Longest answer, in tokens' }), length)));

  let model = null;
  let messages = [];
  let controller = null;

  const bubble = (role, text) => h('li.msg', { 'data-role': role },
    h('span.who', { text: role === 'user' ? 'You' : 'Skill' }), h('p', { text }));

  function busy(on) {
    send.disabled = on;
    stop.hidden = !on;
  }

  function stopAnswer() {
    if (controller) controller.abort();
  }

  temperature.addEventListener('input', () => { shown.textContent = Number(temperature.value).toFixed(1); });
  stop.addEventListener('click', stopAnswer);
  clear.addEventListener('click', () => {
    stopAnswer();
    messages = [];
    log.replaceChildren();
    input.focus();
  });
  input.addEventListener('keydown', (e) => {  // Enter sends, Shift+Enter is a new line
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = '';
    messages.push({ role: 'user', content: text });
    log.append(bubble('user', text));
    const answer = bubble('assistant', '');
    const body = answer.querySelector('p');
    answer.dataset.state = 'streaming';
    log.append(answer);
    const mine = new AbortController();
    controller = mine;
    busy(true);
    const conversation = messages;
    try {
      const r = await streamChat({ model, messages: conversation, temperature: Number(temperature.value),
        max_tokens: Math.min(MAX_TOKENS, Math.max(1, parseInt(length.value, 10) || 256)) }, mine.signal,
      (piece) => { body.textContent += piece; log.scrollTop = log.scrollHeight; });
      answer.dataset.state = 'done';
      if (r.finish_reason === 'length') answer.append(h('small', { text: 'Cut at the length limit.' }));
    } catch (err) {
      answer.dataset.state = mine.signal.aborted ? 'stopped' : 'failed';
      answer.append(h('small', { text: mine.signal.aborted ? 'Stopped.' : `Could not answer: ${err.message}` }));
    }
    // What was shown is the conversation so far; a Clear meanwhile started a new one.
    if (conversation === messages && body.textContent) messages.push({ role: 'assistant', content: body.textContent });
    if (controller === mine) controller = null;
    busy(false);
  });

  return {
    show(adapter) {
      stopAnswer();
      model = `${adapter.skill}@${adapter.version}`;
      messages = [];
      log.replaceChildren();
    },
    stop: stopAnswer,
  };
}
