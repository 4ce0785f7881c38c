// use.js: the adapters table's "Use" panel, a modal <dialog> for one adapter: try it in a chat,
// take it away (the PEFT download, an export with progress) and call it from code (snippets
// with this page's own origin, each with a copy button). Escape or Close shuts it; the
// browser gives focus back to the Use button that opened it.
import { h, announce } from './dom.js';
import { createChat } from './chat.js';
import { createExporter } from './exporter.js';
import { snippets } from './snippets.js';

// Copy text; without the Clipboard API (a page served over plain http from another machine is
// not a secure context) through a selection and execCommand.
async function copy(text, pre) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(pre);
  const sel = getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  const ok = document.execCommand('copy');
  sel.removeAllRanges();
  if (!ok) throw new Error('the browser refused; select the text and copy it');
}

// createUse(dialog) -> {open(adapter)}
export function createUse(dialog) {
  const title = h('h2', { id: 'use-title' });
  const close = h('button', { type: 'button', id: 'use-close', 'aria-label': 'Close' }, 'Close');
  const chatBox = h('section.use-chat', { 'aria-labelledby': 'use-chat-h' }, h('h3', { id: 'use-chat-h', text: 'Try it' }));
  const download = h('a.button', { id: 'use-download' }, 'Download the adapter (.tar.gz)');
  const exportBox = h('div.use-export', { id: 'use-export' });
  const snippetList = h('div.snippets', { id: 'use-snippets' });
  dialog.append(
    h('div.use-head', {}, title, close),
    h('div.use-body', {},
      chatBox,
      h('div.use-side', {},
        h('section', { 'aria-labelledby': 'use-take-h' },
          h('h3', { id: 'use-take-h', text: 'Take it away' }),
          h('p.hint', { text: 'The trained adapter as it is (PEFT files, for Python), with a README on using it.' }),
          download,
          h('h4', { text: 'Export for another app' }),
          exportBox),
        h('section', { 'aria-labelledby': 'use-code-h' },
          h('h3', { id: 'use-code-h', text: 'Use it from your code' }),
          snippetList))));

  const chat = createChat(chatBox);
  let adapter = null;
  let type = 'f16';
  const exporter = createExporter(exportBox, { onType: (t) => { type = t; renderSnippets(); } });

  function renderSnippets() {
    const list = snippets({ origin: location.origin, skill: adapter.skill, version: adapter.version, type });
    snippetList.replaceChildren(...list.map((s) => {
      const code = h('code', { text: s.text });
      const pre = h('pre', { 'data-lang': s.lang }, code);
      const button = h('button.copy', { type: 'button', 'aria-label': `Copy the ${s.title} snippet` }, 'Copy');
      button.addEventListener('click', async () => {
        try {
          await copy(s.text, pre);
          button.textContent = 'Copied';
          setTimeout(() => { button.textContent = 'Copy'; }, 2000);
        } catch (e) {
          announce(`Could not copy: ${e.message}`, 'error');
        }
      });
      return h('div.snippet', { 'data-snippet': s.id },
        h('div.snippet-head', {}, h('h4', { text: s.title }), button), pre, h('p.hint', { text: s.note }));
    }));
  }

  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    chat.stop();
    exporter.close();  // the export goes on on the server; only the live view stops
  });

  return {
    open(a) {
      adapter = a;
      title.textContent = `Use ${a.skill} \u00b7 ${a.version}`;
      const path = `/api/adapters/${encodeURIComponent(a.skill)}/${encodeURIComponent(a.version)}`;
      download.href = `${path}/download`;
      download.download = `${a.skill}-${a.version}.tar.gz`;
      chat.show(a);
      renderSnippets();
      exporter.show(a);
      dialog.showModal();
      dialog.querySelector('#chat-input').focus();
    },
  };
}
