// chart.js: the dashboard's charts on the vendored Chart.js (window.Chart, loaded by
// index.html from vendor/): the live loss/eval-loss line chart, the training history's
// overlay of several runs' losses, and the token-length histogram.
const { Chart } = window;

const axisColor = '#5b6473';

// The x (step) and y (loss) axes of the loss charts.
const stepLossScales = () => ({
  x: { type: 'linear', title: { display: true, text: 'step', color: axisColor }, ticks: { color: axisColor, precision: 0 } },
  y: { title: { display: true, text: 'loss', color: axisColor }, ticks: { color: axisColor } },
});
const points = (history) => (history || []).map(([x, y]) => ({ x, y }));

// A line chart of [[step, loss]...] histories: the smoothed training loss (the number the
// view shows), each step's own training loss (faint: it jumps with each batch) and the
// held-out (eval) loss. set(loss, evalLoss, smoothed) replaces them, add(kind, step, value)
// appends a point ('smoothed', 'loss' or 'eval').
const LINES = ['smoothed', 'loss', 'eval'];
export function lossChart(canvas) {
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        { label: 'Training loss (smoothed)', data: [], borderColor: '#1d4ed8', backgroundColor: '#1d4ed8', borderWidth: 3, pointRadius: 0, tension: 0.2 },
        { label: 'Training loss (each step)', data: [], borderColor: '#93c5fd', backgroundColor: '#93c5fd', borderWidth: 1, pointRadius: 0 },
        { label: 'Held-out loss', data: [], borderColor: '#d97706', backgroundColor: '#d97706', pointRadius: 3 },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: stepLossScales(),
      plugins: { legend: { labels: { color: axisColor } } },
    },
  });
  const line = (kind) => chart.data.datasets[LINES.indexOf(kind)];
  // Points come a step at a time (tens a second on a small model): one redraw a frame.
  let drawing = false;
  const redraw = () => {
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => { drawing = false; chart.update(); });
  };
  return {
    chart,
    set(loss, evalLoss, smoothed) {
      line('loss').data = points(loss);
      line('eval').data = points(evalLoss);
      line('smoothed').data = points(smoothed);
      chart.update();
    },
    add(kind, step, value) {
      if (typeof value !== 'number') return;
      const { data } = line(kind);
      const last = data[data.length - 1];
      if (last && last.x >= step) return;  // a replayed point
      data.push({ x: step, y: value });
      redraw();
    },
    points: () => line('loss').data.length,
  };
}

// Distinct colours at AA contrast on white, one a run.
const SERIES = ['#1d4ed8', '#b45309', '#047857', '#7c3aed', '#be123c', '#0e7490'];

// Several runs' loss on one chart: set([{label, loss, evalLoss}...]) draws each run's loss in
// its own colour, its held-out loss dashed.
export function overlayChart(canvas) {
  const chart = new Chart(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: { animation: false, maintainAspectRatio: false, parsing: false, scales: stepLossScales(),
      plugins: { legend: { labels: { color: axisColor, boxHeight: 2 } } } },
  });
  return {
    chart,
    set(runs) {
      chart.data.datasets = runs.flatMap((run, i) => {
        const color = SERIES[i % SERIES.length];
        const line = { borderColor: color, backgroundColor: color, tension: 0.2 };
        return [{ ...line, label: `${run.label} loss`, data: points(run.loss), pointRadius: 0 },
          ...(run.evalLoss && run.evalLoss.length
            ? [{ ...line, label: `${run.label} held-out`, data: points(run.evalLoss), borderDash: [6, 4], pointRadius: 2 }] : [])];
      });
      chart.update();
    },
  };
}

// A bar chart of the dataset's token-length histogram ([{upto, count}...], the last open).
export function histogramChart(canvas) {
  const chart = new Chart(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'examples', data: [], backgroundColor: '#0f766e' }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: {
        x: { title: { display: true, text: 'tokens per example', color: axisColor }, ticks: { color: axisColor } },
        y: { beginAtZero: true, ticks: { precision: 0, color: axisColor } },
      },
    },
  });
  return {
    // axis: what the lengths count (whose tokens), for the x axis's title.
    set(histogram, axis) {
      if (axis) chart.options.scales.x.title.text = axis;
      let lower = 0;
      chart.data.labels = (histogram || []).map((b) => {
        const label = b.upto === undefined ? `> ${lower}` : `${lower}–${b.upto}`;
        lower = b.upto;
        return label;
      });
      chart.data.datasets[0].data = (histogram || []).map((b) => b.count);
      chart.update();
    },
  };
}
