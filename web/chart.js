// chart.js: the dashboard's two charts on the vendored Chart.js (window.Chart, loaded by
// index.html from vendor/): the live loss/eval-loss line chart and the token-length histogram.
const { Chart } = window;

const axisColor = '#5b6473';

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
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step', color: axisColor }, ticks: { color: axisColor } },
        y: { title: { display: true, text: 'loss', color: axisColor }, ticks: { color: axisColor } },
      },
    },
  });
  const points = (history) => (history || []).map(([x, y]) => ({ x, y }));
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
    set(histogram) {
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
