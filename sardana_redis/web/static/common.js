"use strict";
// Shared by the pages: the Redis address (redacted by the server), a colormap.
function showServer() {
  fetch("/about").then(r => r.json()).then(a => {
    document.getElementById("redis").textContent = a.redis + " \u00b7 sardana-redis " + a.version;
  }).catch(() => {});
}
// viridis-like colormap, t in [0, 1] -> [r, g, b]
const COLORMAP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colormap(t) {
  if (!(t >= 0)) t = 0;
  if (t > 1) t = 1;
  const f = t * (COLORMAP.length - 1), i = Math.min(Math.floor(f), COLORMAP.length - 2), w = f - i;
  const a = COLORMAP[i], b = COLORMAP[i + 1];
  return [a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w];
}
function statusLive(live) {
  const s = document.getElementById("status");
  s.textContent = live ? "live" : "reconnecting";
  s.className = live ? "status live" : "status";
}
