// chart.js: the dashboard's charts on the vendored Chart.js (window.Chart, loaded by
// index.html from vendor/): the live loss/eval-loss line chart, the training history's
// overlay of several runs' losses, and the token-length histogram.
const { Chart } = window;

const axisColor = '#5b6473';

// The x (step) and y (loss) axes of the loss charts.
const stepLossScales = () => ({
  x: { type: 'linear', title: { display: true, text: 'step', color: axisColor }, ticks: { color: axisColor } },
  y: { title: { display: true, text: 'loss', color: axisColor }, ticks: { color: axisColor } },
});
const points = (history) => (history || []).map(([x, y]) => ({ x, y }));

// A line chart of [[step, loss]...] histories: set(loss, evalLoss) replaces both, add(kind,
// step, value) appends a point ('loss' or 'eval').
export function lossChart(canvas) {
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        { label: 'Loss', data: [], borderColor: '#2563eb', backgroundColor: '#2563eb', pointRadius: 0, tension: 0.2 },
        { label: 'Eval loss', data: [], borderColor: '#d97706', backgroundColor: '#d97706', pointRadius: 3 },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: stepLossScales(),
    },
  });
  return {
    chart,
    set(loss, evalLoss) {
      chart.data.datasets[0].data = points(loss);
      chart.data.datasets[1].data = points(evalLoss);
      chart.update();
    },
    add(kind, step, value) {
      if (typeof value !== 'number') return;
      const data = chart.data.datasets[kind === 'eval' ? 1 : 0].data;
      const last = data[data.length - 1];
      if (last && last.x >= step) return;  // a replayed point
      data.push({ x: step, y: value });
      chart.update();
    },
    points: () => chart.data.datasets[0].data.length,
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
