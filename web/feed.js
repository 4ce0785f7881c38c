// feed.js: a live feed of a server's events: an EventSource on `url`, replaced by calling
// poll() every pollMs when the stream never opens or the browser gives up on it (a dropped
// stream the browser retries itself, resuming with Last-Event-ID). The training view and the
// data generation control share it.
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
