// RecMaster live dashboard: polls /api/dashboard?since= every second, keeps the last
// MAX_POINTS seconds in columns, and draws them with uPlot (loaded before this module as a
// global). Model versions and markers (drift) are vertical lines drawn by a small uPlot plugin.
// Each chart's <figure> carries data-points / data-markers / data-versions for tests.
const { uPlot } = window;

const MAX_POINTS = 600;
const POLL_MS = 1000;
const HEIGHT = 180;
const COLOR = {
  blue: '#2563eb',
  violet: '#7c3aed',
  teal: '#0d9488',
  amber: '#d97706',
  drift: '#dc2626',
  version: '#64748b',
};

const fixed = (digits) => (v) => v.toFixed(digits);
const pct = (v) => `${(v * 100).toFixed(1)}%`;
const ms = (v) => `${v < 10 ? Number(v.toFixed(1)) : Math.round(v)} ms`;
const int = (v) => Math.round(v).toLocaleString('en-US');
const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });

/** One entry per chart: which point fields it draws, on which y scale, formatted how. */
const CHARTS = [
  {
    id: 'rps',
    title: 'Requests / s',
    series: [{ key: 'rps', label: 'requests/s', color: COLOR.blue, fmt: fixed(0) }],
  },
  {
    id: 'latency',
    title: 'Latency',
    series: [
      { key: 'p50Ms', label: 'p50', color: COLOR.blue, fmt: ms },
      { key: 'p99Ms', label: 'p99', color: COLOR.violet, fmt: ms },
    ],
  },
  {
    id: 'freshness',
    title: 'Feature freshness (p99, event to store)',
    series: [{ key: 'freshnessP99Ms', label: 'p99', color: COLOR.teal, fmt: ms }],
  },
  {
    id: 'auc',
    title: 'Rolling AUC: online vs frozen model',
    series: [
      { key: 'aucOnline', label: 'online', color: COLOR.blue, fmt: fixed(3) },
      { key: 'aucFrozen', label: 'frozen', color: COLOR.amber, fmt: fixed(3), dash: [6, 4] },
    ],
  },
  {
    id: 'engagement',
    title: 'Simulated CTR and watch time',
    series: [
      { key: 'ctr', label: 'CTR', color: COLOR.blue, fmt: pct, scale: 'ctr' },
      {
        key: 'watchS',
        label: 'watch s / impression',
        color: COLOR.teal,
        fmt: fixed(1),
        scale: 's',
      },
    ],
  },
  {
    id: 'cold',
    title: 'Share of cold items recommended',
    series: [{ key: 'coldShare', label: 'cold share', color: COLOR.violet, fmt: pct }],
  },
];

// ---- data: one column per point field, x in seconds (uPlot's time unit) ----

const KEYS = CHARTS.flatMap((c) => c.series.map((s) => s.key));
const data = { x: [] };
for (const key of KEYS) data[key] = [];

function append(points) {
  for (const p of points) {
    data.x.push(p.t / 1000);
    for (const key of KEYS) data[key].push(p[key] ?? null);
  }
  const extra = data.x.length - MAX_POINTS;
  if (extra > 0) for (const column of Object.values(data)) column.splice(0, extra);
}

function clear() {
  for (const column of Object.values(data)) column.length = 0;
}

// ---- charts ----

/** Vertical lines: model versions (dashed, grey) and markers such as drift (solid, red). */
let overlays = [];

function linesPlugin(figure) {
  const draw = (u) => {
    const { ctx, bbox } = u;
    const px = uPlot.pxRatio;
    const counts = { marker: 0, version: 0 };
    ctx.save();
    ctx.font = `${11 * px}px system-ui, sans-serif`;
    for (const line of overlays) {
      const x = Math.round(u.valToPos(line.t / 1000, 'x', true));
      if (!(x >= bbox.left && x <= bbox.left + bbox.width)) continue;
      ctx.strokeStyle = line.color;
      ctx.fillStyle = line.color;
      ctx.lineWidth = line.width * px;
      ctx.setLineDash(line.dash.map((d) => d * px));
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
      ctx.fillText(line.label, x + 4 * px, bbox.top + line.labelY * px);
      counts[line.kind]++;
    }
    ctx.restore();
    figure.dataset.markers = String(counts.marker);
    figure.dataset.versions = String(counts.version);
  };
  return { hooks: { draw: [draw] } };
}

function makeChart(spec, container) {
  const figure = document.createElement('figure');
  figure.className = 'chart';
  figure.id = `chart-${spec.id}`;
  figure.dataset.points = '0';
  figure.dataset.colors = spec.series.map((s) => s.color).join(',');
  const caption = document.createElement('figcaption');
  caption.textContent = spec.title;
  const plot = document.createElement('div');
  figure.append(caption, plot);
  container.append(figure);

  const scaleOf = (s) => s.scale ?? 'y';
  const scales = [...new Set(spec.series.map(scaleOf))];
  const axes = scales.map((scale, i) => {
    const fmt = spec.series.find((s) => scaleOf(s) === scale).fmt;
    return {
      scale,
      side: i === 0 ? 3 : 1,
      size: 62,
      grid: { show: i === 0 },
      values: (_u, ticks) => ticks.map((v) => fmt(v)),
    };
  });
  const series = spec.series.map((s) => ({
    label: s.label,
    scale: scaleOf(s),
    stroke: s.color,
    width: 2,
    dash: s.dash,
    spanGaps: true,
    value: (u, v, i, idx) => legendValue(u, v, i, idx, s.fmt),
  }));
  const options = {
    width: plot.clientWidth || 420,
    height: HEIGHT,
    cursor: { sync: { key: 'recmaster' } },
    scales: { x: { time: true } },
    series: [
      { label: 'time', value: (u, v, i, idx) => legendValue(u, v, i, idx, secondsClock) },
      ...series,
    ],
    axes: [{}, ...axes],
    plugins: [linesPlugin(figure)],
  };
  const u = new uPlot(options, columns(spec), plot);
  new ResizeObserver(() => {
    const width = plot.clientWidth;
    if (width > 0 && Math.abs(width - u.width) > 1) u.setSize({ width, height: HEIGHT });
  }).observe(plot);
  return { spec, u, figure };
}

/** The legend shows the value under the cursor, or the newest one when the cursor is elsewhere. */
function legendValue(u, v, seriesIdx, idx, fmt) {
  const value = idx == null ? u.data[seriesIdx].at(-1) : v;
  return value == null ? '–' : fmt(value);
}

const secondsClock = (s) => clock(s * 1000);

function columns(spec) {
  return [data.x, ...spec.series.map((s) => data[s.key])];
}

const charts = CHARTS.map((spec) => makeChart(spec, document.getElementById('charts')));
// For the console and the browser test.
window.dashboard = {
  charts: Object.fromEntries(charts.map((c) => [c.spec.id, c.u])),
  colors: COLOR,
};

// ---- headline numbers and timelines ----

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function duration(msTotal) {
  const s = Math.max(0, Math.floor(msTotal / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}h ${pad(m)}m` : `${m}m ${pad(s % 60)}s`;
}

function renderHeadline(state) {
  const { totals } = state;
  const errorShare = totals.requests > 0 ? ` (${pct(totals.errors / totals.requests)})` : '';
  setText('stat-requests', int(totals.requests));
  setText('stat-errors', `${int(totals.errors)}${errorShare}`);
  setText('stat-version', totals.modelVersion);
  setText('stat-samples', int(totals.samples));
  setText('stat-uptime', duration(Date.now() - state.startedAt));
  const last = (key) => data[key].at(-1);
  setText('stat-rps', last('rps') == null ? '–' : int(last('rps')));
  setText('stat-p99', last('p99Ms') == null ? '–' : ms(last('p99Ms')));
}

function renderTimeline(id, entries) {
  const list = document.getElementById(id);
  const items = entries
    .slice(-12)
    .reverse()
    .map(({ t, title, detail }) => {
      const li = document.createElement('li');
      const time = document.createElement('time');
      time.textContent = clock(t);
      const name = document.createElement('b');
      name.textContent = title;
      li.append(time, name);
      if (detail) li.append(` ${detail}`);
      return li;
    });
  if (items.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'none yet';
    items.push(li);
  }
  list.replaceChildren(...items);
}

// ---- polling ----

let since = null;
let startedAt = null;

function setStatus(kind, text) {
  const status = document.getElementById('status');
  status.dataset.state = kind;
  status.textContent = text;
}

async function poll() {
  try {
    const url = since === null ? '/api/dashboard' : `/api/dashboard?since=${since}`;
    const res = await fetch(url, { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const state = await res.json();
    if (startedAt !== null && state.startedAt !== startedAt && since !== null) {
      // The demo restarted: start over with its full history.
      clear();
      since = null;
      startedAt = null;
      return setTimeout(poll, 0);
    }
    startedAt = state.startedAt;
    append(state.points);
    if (state.points.length > 0) since = state.points.at(-1).t;
    overlays = [
      ...state.versions.map((v) => ({
        kind: 'version',
        t: v.t,
        label: v.version,
        color: COLOR.version,
        width: 1,
        dash: [4, 3],
        labelY: 12,
      })),
      ...state.markers.map((m) => ({
        kind: 'marker',
        t: m.t,
        label: m.name,
        color: COLOR.drift,
        width: 2,
        dash: [],
        labelY: 26,
      })),
    ];
    for (const { spec, u, figure } of charts) {
      u.setData(columns(spec));
      figure.dataset.points = String(data.x.length);
    }
    renderHeadline(state);
    renderTimeline(
      'markers',
      state.markers.map((m) => ({ t: m.t, title: m.name, detail: m.detail })),
    );
    renderTimeline(
      'versions',
      state.versions.map((v) => ({ t: v.t, title: v.version, detail: v.reason })),
    );
    setStatus('live', `live · ${data.x.length} s of history · updated ${clock(Date.now())}`);
  } catch (err) {
    setStatus('error', `cannot reach the server (${err.message}); retrying`);
  }
  setTimeout(poll, POLL_MS);
}

poll();

// ---- one user's recommendations, with why ----

const form = document.getElementById('lookup-form');
const table = document.getElementById('lookup-table');
const message = document.getElementById('lookup-message');

function say(text, kind = 'info') {
  message.textContent = text;
  message.dataset.kind = kind;
}

function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  return td;
}

function renderRecommendations(result) {
  table.querySelector('caption').textContent =
    `user ${result.userId} · model ${result.modelVersion} · ${result.items.length} items`;
  const rows = [...result.items]
    .sort((a, b) => a.position - b.position)
    .map((item) => {
      const tr = document.createElement('tr');
      const cold = document.createElement('span');
      if (item.cold) {
        cold.className = 'cold';
        cold.textContent = 'cold';
      }
      const name = item.category ? `${item.itemId} (${item.category})` : item.itemId;
      tr.append(
        cell(String(item.position + 1)),
        cell(name),
        cell(item.source),
        cell(cold),
        cell(item.scores.click.toFixed(3), 'num'),
        cell(item.scores.watchSeconds.toFixed(1), 'num'),
        cell(item.scores.final.toFixed(3), 'num'),
      );
      return tr;
    });
  table.querySelector('tbody').replaceChildren(...rows);
  table.hidden = false;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const userId = form.elements.userId.value.trim();
  if (!userId) return;
  table.hidden = true;
  say(`looking up ${userId}…`);
  try {
    const res = await fetch(`/api/users/${encodeURIComponent(userId)}/recommendations`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) return say(body.message ?? `lookup failed: HTTP ${res.status}`, 'error');
    renderRecommendations(body);
    say('');
  } catch (err) {
    say(`lookup failed: ${err.message}`, 'error');
  }
});
