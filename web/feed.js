// feed.js: a live feed of a server's events: an EventSource on `url`, replaced by calling
// poll() every pollMs when the stream never opens or the browser gives up on it (a dropped
// stream the browser retries itself, resuming with Last-Event-ID). The training view, the
// data generation control and the export control share it; the last two follow a server task
// through taskFeed.
import { errorText } from './api.js';
import { announce } from './dom.js';

const POLL_MS = 3000;

// liveFeed({url, events: [type...], onEvent(type, data), poll(), onMode('sse'|'polling')})
// -> {close()}.
export function liveFeed({ url, events, onEvent, poll, onMode }) {
  let source = null;
  let timer = null;

  function close() {
    if (source) source.close();
    clearInterval(timer);
    source = null;
    timer = null;
  }

  function startPolling() {
    close();
    onMode('polling');
    poll();
    timer = setInterval(poll, POLL_MS);
  }

  const es = new EventSource(url);
  source = es;
  onMode('sse');
  let opened = false;
  es.onopen = () => { opened = true; };
  es.onerror = () => {
    if (source === es && (!opened || es.readyState === EventSource.CLOSED)) startPolling();
    opened = false;
  };
  for (const type of events) {
    // 'error' is also the EventSource's own failure event, which carries no data.
    es.addEventListener(type, (e) => { if (e.data !== undefined) onEvent(type, JSON.parse(e.data)); });
  }
  return { close };
}

// taskFeed(root, {render(task), poll()}) -> {follow(url), unfollow()}: the events of a task the
// server runs (snapshot, progress, done, cancelled, error), each carrying the task, into render; while
// following, follow() again is a no-op. root.dataset.feed says 'sse' or 'polling'.
export function taskFeed(root, { render, poll }) {
  let feed = null;
  return {
    follow(url) {
      if (feed) return;
      feed = liveFeed({
        url,
        events: ['snapshot', 'progress', 'done', 'cancelled', 'error'],
        onEvent: (_, task) => render(task),
        poll,
        onMode: (mode) => { root.dataset.feed = mode; },
      });
    },
    unfollow() {
      if (feed) feed.close();
      feed = null;
    },
  };
}

// startTask(request, {render(task), follow(), what, already}): POST a task (request() -> the
// answer): a 202, or a 409 with the task already running, is rendered and followed; a 409 says
// `already`, any other answer or a failure "Could not <what>: ...".
export async function startTask(request, { render, follow, what, already }) {
  try {
    const r = await request();
    if (r.status === 202 || r.status === 409) { render(r.body.task); follow(); }
    if (r.status === 409) announce(already);
    else if (r.status !== 202) announce(`Could not ${what}: ${errorText(r)}`, 'error');
  } catch (e) {
    announce(`Could not ${what}: ${e.message}`, 'error');
  }
}
