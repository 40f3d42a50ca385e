"use strict";
// One scan, live: its state and its panels (curves with uPlot, a mesh's scatter, the last
// spectrum and a waterfall of 1D channels, the last frame of 2D channels, decimated by the
// server). Everything arrives on one server-sent event stream. What is drawn is exposed in
// window.viewerState (read by the tests and the benchmark).
const MAX_DRAWS = 20000;
const key = decodeURIComponent(location.pathname.slice("/scan/".length));
const series = { values: {}, stride: 1 };   // scalar stream -> values (decimated by stride)
window.viewerState = {
  key: key, connected: false, messages: 0, scan: {}, done: false, panels: [], draws: [],
  series: series,
};
const heavy = {};                            // 1D/2D stream -> {last, point, waterfall: [[point, values]]}
let panels = [];                             // {desc, state, draw()}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function label(desc, name) { return (desc.labels && desc.labels[name]) || name || "point"; }

function range(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v !== null && v < lo) lo = v; if (v !== null && v > hi) hi = v; }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

function extent(values) {
  // the values' real minimum and maximum, for captions
  if (!values.some(v => v !== null)) return ["-", "-"];
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo.toPrecision(4), hi.toPrecision(4)];
}

function chartWidth(box) { return Math.max(320, Math.min(940, box.clientWidth - 20)); }

function curvePanel(desc, box) {
  // one uPlot chart: the y streams against the x stream (or the point index)
  const state = { kind: "curves", streams: desc.streams, axes: desc.x ? [desc.x] : [],
                  xlabel: label(desc, desc.x), ylabel: desc.streams.map(s => label(desc, s)).join(", "),
                  points: 0 };
  let xr = [0, 1];
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  const plot = new uPlot({
    width: chartWidth(box), height: 320,
    scales: { x: { time: false, range: () => xr } },
    axes: [{ label: state.xlabel }, { label: state.ylabel }],
    series: [{ label: state.xlabel }, ...desc.streams.map((s, i) => ({
      // uPlot's default markers: shown while the points are sparse, not when thousands
      label: label(desc, s), stroke: colors[i % colors.length], width: 1.5,
    }))],
  }, [[], ...desc.streams.map(() => [])], box);
  return { state, draw() {
    const ys = desc.streams.map(s => series.values[s] || []);
    const xs = desc.x ? (series.values[desc.x] || []) : null;
    const n = Math.min(...ys.map(y => y.length), xs ? xs.length : Infinity);
    const x = xs ? xs.slice(0, n) : Array.from({ length: n }, (_, i) => i * series.stride);
    xr = range(x);
    plot.setData([x, ...ys.map(y => y.slice(0, n))]);
    state.points = n;
    return n;
  } };
}

function meshPanel(desc, box) {
  // a scatter of square markers colored by the value: an image once the grid is full
  const state = { kind: "mesh", streams: desc.streams, axes: [desc.x, desc.y],
                  xlabel: label(desc, desc.x), ylabel: label(desc, desc.y), points: 0, image: null };
  const canvas = el("canvas", "map");
  canvas.width = 640; canvas.height = 480;
  const caption = el("div", "caption");
  box.append(canvas, caption);
  const ctx = canvas.getContext("2d");
  return { state, draw() {
    const xs = series.values[desc.x] || [], ys = series.values[desc.y] || [];
    const vs = series.values[desc.streams[0]] || [];
    const n = Math.min(xs.length, ys.length, vs.length);
    const [x0, x1] = range(xs.slice(0, n)), [y0, y1] = range(ys.slice(0, n)), [v0, v1] = range(vs.slice(0, n));
    const [lo, hi] = extent(vs.slice(0, n));
    const nx = desc.grid ? desc.grid[0] : Math.max(2, Math.round(Math.sqrt(n)));
    const ny = desc.grid ? desc.grid[1] : Math.max(2, Math.round(Math.sqrt(n)));
    const pad = 40, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
    const cw = w / nx, ch = h / ny;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < n; i++) {
      if (xs[i] === null || ys[i] === null) continue;
      const [r, g, b] = colormap((vs[i] - v0) / (v1 - v0));
      ctx.fillStyle = `rgb(${r | 0},${g | 0},${b | 0})`;
      const px = pad + (xs[i] - x0) / (x1 - x0) * (w - cw), py = pad + h - ch - (ys[i] - y0) / (y1 - y0) * (h - ch);
      ctx.fillRect(px, py, Math.ceil(cw), Math.ceil(ch));
    }
    ctx.fillStyle = "#222"; ctx.font = "12px sans-serif";
    ctx.fillText(`${state.xlabel}: ${x0.toPrecision(4)} .. ${x1.toPrecision(4)}`, pad, canvas.height - 12);
    ctx.save(); ctx.translate(14, pad + h); ctx.rotate(-Math.PI / 2);
    ctx.fillText(`${state.ylabel}: ${y0.toPrecision(4)} .. ${y1.toPrecision(4)}`, 0, 0); ctx.restore();
    state.image = desc.image || null;
    caption.textContent = `${label(desc, desc.streams[0])}: ${n} points, values ${lo} .. ${hi}` +
      (desc.image ? " (a full regular grid: image)" : " (scatter)");
    state.points = n;
    return n;
  } };
}

function imageOf(canvas, frame, rows) {
  // frame: {shape, data (base64 uint8 rows)}; drawn with row 0 at the bottom
  const [h, w] = frame.shape;
  const bytes = Uint8Array.from(atob(frame.data), c => c.charCodeAt(0));
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const [R, G, B] = colormap(bytes[r * w + c] / 255), o = ((rows ? h - 1 - r : r) * w + c) * 4;
      img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

function framePanel(desc, box) {
  const name = desc.streams[0];
  const state = { kind: "image", streams: desc.streams, axes: [], xlabel: "x (pixel)", ylabel: "y (pixel)",
                  frame: null };
  const canvas = el("canvas", "map"), caption = el("div", "caption", "no frame yet");
  box.append(canvas, caption);
  return { state, draw() {
    const h = heavy[name];
    if (!h || !h.last || h.drawn === h.point) return 0;
    imageOf(canvas, h.last, true);
    h.drawn = h.point;
    state.frame = { shape: h.last.shape, source_shape: h.last.source_shape, point: h.point,
                    min: h.last.min, max: h.last.max };
    caption.textContent = `${label(desc, name)}: point ${h.point}, frame ${h.last.source_shape.join(" x ")} ` +
      `shown as ${h.last.shape.join(" x ")}, values ${h.last.min.toPrecision(4)} .. ${h.last.max.toPrecision(4)}`;
    return 1;
  } };
}

function spectrumPanel(desc, box) {
  const name = desc.streams[0];
  const state = { kind: "spectrum", streams: desc.streams, axes: desc.x ? [desc.x] : [],
                  xlabel: label(desc, desc.x) === "point" ? "index" : label(desc, desc.x),
                  ylabel: label(desc, name), spectrum: null, waterfall_rows: 0 };
  let xr = [0, 1];
  const plot = new uPlot({
    width: chartWidth(box), height: 260, scales: { x: { time: false, range: () => xr } },
    axes: [{ label: state.xlabel }, { label: state.ylabel }],
    series: [{ label: state.xlabel }, { label: state.ylabel, stroke: "#1f77b4", width: 1 }],
  }, [[], []], box);
  const canvas = el("canvas", "map waterfall"), caption = el("div", "caption", "waterfall: no spectrum yet");
  box.append(canvas, caption);
  return { state, draw() {
    const h = heavy[name];
    if (!h || !h.last || h.drawn === h.point) return 0;
    const y = h.last, xs = desc.x && heavy[desc.x] && heavy[desc.x].last;
    const x = xs && xs.length === y.length ? xs : Array.from({ length: y.length }, (_, i) => i);
    xr = range(x);
    plot.setData([x, y]);
    h.drawn = h.point;
    state.spectrum = { length: y.length, point: h.point };
    const rows = h.waterfall;
    if (rows.length) {
      const width = rows.reduce((w, r) => Math.max(w, r[1].length), 0);
      const flat = rows.flatMap(r => r[1]);
      const [lo, hi] = range(flat);
      const bytes = new Uint8Array(rows.length * width);
      rows.forEach((r, i) => r[1].forEach((v, j) => { bytes[i * width + j] = v === null ? 0 : (v - lo) / (hi - lo) * 255; }));
      let bin = ""; for (const b of bytes) bin += String.fromCharCode(b);
      imageOf(canvas, { shape: [rows.length, width], data: btoa(bin) }, true);
      caption.textContent = `waterfall: points ${rows[0][0]} .. ${rows[rows.length - 1][0]} (bottom to top), ` +
        `values ${lo.toPrecision(4)} .. ${hi.toPrecision(4)}`;
    }
    state.waterfall_rows = rows.length;
    return 1;
  } };
}

const MAKERS = { curves: curvePanel, mesh: meshPanel, image: framePanel, spectrum: spectrumPanel };

function buildPanels(descs) {
  const main = document.getElementById("panels");
  main.replaceChildren();
  panels = descs.map(desc => {
    const box = el("section", "panel");
    const title = desc.kind === "curves" ? desc.streams.map(s => label(desc, s)).join(", ")
      : `${label(desc, desc.streams[0])} (${desc.kind})`;
    box.append(el("h2", null, title));
    main.appendChild(box);
    const p = MAKERS[desc.kind](desc, box);
    p.desc = desc;
    return p;
  });
  viewerState.panels = panels.map(p => p.state);
}

function showScan(scan, done) {
  document.getElementById("title").textContent =
    `#${scan.number ?? "?"} ${scan.title || scan.name || ""}`;
  document.title = `#${scan.number ?? "?"} ${scan.name || "scan"}`;
  document.getElementById("state").textContent = scan.error ? "ERROR" : scan.state;
  const progress = document.getElementById("progress");
  if (scan.npoints) { progress.max = scan.npoints; progress.value = Math.min(scan.points, scan.npoints); }
  else progress.removeAttribute("value");
  document.getElementById("points").textContent =
    `${scan.points} point(s)` + (scan.npoints ? ` of ${scan.npoints}` : "");
  document.getElementById("end-reason").textContent = scan.end_reason ? `end: ${scan.end_reason}` : "";
  const notes = Object.entries(scan.not_drawn || {}).map(([k, v]) => `${k} not drawn: ${v}`);
  if (scan.error) notes.unshift(scan.error);
  document.getElementById("notes").textContent = notes.join("\n");
}

function onMessage(msg) {
  const received = performance.timeOrigin + performance.now();
  viewerState.messages += 1;
  if (msg.panels) { buildPanels(msg.panels); for (const k of Object.keys(heavy)) delete heavy[k]; }
  const s = msg.series;
  if (s.reset) series.values = {};
  series.stride = s.stride;
  for (const [name, values] of Object.entries(s.values)) {
    const kept = series.values[name] || (series.values[name] = []);
    for (const v of values) kept.push(v);
  }
  for (const [name, item] of Object.entries(msg.heavy)) {
    const h = heavy[name] || (heavy[name] = { waterfall: [] });
    if (item.last !== undefined) { h.last = item.last; h.point = item.point; }
    if (item.waterfall) { h.waterfall = h.waterfall.concat(item.waterfall).slice(-100); }
  }
  for (const p of panels) p.draw();
  const drawnAt = performance.timeOrigin + performance.now();
  viewerState.scan = msg.scan;
  viewerState.done = msg.done;
  showScan(msg.scan, msg.done);
  // when the page is painted: the time each batch became visible (the benchmark reads it)
  requestAnimationFrame(() => {
    const rows = Math.max(0, ...viewerState.panels.map(p => p.points || 0));
    if (viewerState.draws.length < MAX_DRAWS) {
      viewerState.draws.push([performance.timeOrigin + performance.now(), rows, received, drawnAt]);
    }
  });
}

(function () {
  const source = new EventSource("/events/scan/" + encodeURIComponent(key));
  source.onopen = () => { viewerState.connected = true; statusLive(true); };
  source.onerror = () => {
    viewerState.connected = false;
    if (viewerState.done) { source.close(); document.getElementById("status").textContent = "ended"; }
    else statusLive(false);
  };
  source.addEventListener("busy", (e) => { document.getElementById("status").textContent = JSON.parse(e.data); });
  source.addEventListener("scan", (e) => {
    const msg = JSON.parse(e.data);
    onMessage(msg);
    if (msg.done) { source.close(); document.getElementById("status").textContent = "ended"; }
  });
  showServer();
})();
