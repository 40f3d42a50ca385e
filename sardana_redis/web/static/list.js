"use strict";
// The list of scans, followed through one server-sent event stream.
window.viewerState = { scans: [], messages: 0, connected: false };
(function () {
  const form = document.getElementById("filters");
  const params = new URLSearchParams(location.search);
  for (const input of form.elements) {
    if (input.name && params.get(input.name)) input.value = params.get(input.name);
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const input of form.elements) if (input.name && input.value) q.set(input.name, input.value);
    location.search = q.toString();
  });
  params.delete("token");
  const source = new EventSource("/events/scans?" + params.toString());
  source.onopen = () => { viewerState.connected = true; statusLive(true); };
  source.onerror = () => { viewerState.connected = false; statusLive(false); };
  source.addEventListener("busy", (e) => { document.getElementById("status").textContent = JSON.parse(e.data); });
  source.addEventListener("scans", (e) => {
    const scans = JSON.parse(e.data);
    viewerState.scans = scans;
    viewerState.messages += 1;
    const body = document.querySelector("#scans tbody");
    body.replaceChildren();
    for (const s of scans.slice().reverse()) {  // most recent first
      const tr = document.createElement("tr");
      if (s.state !== "CLOSED") tr.className = "running";
      const cells = [s.number, s.name, s.session, s.state, s.points, s.start_time, s.end_reason || "-"];
      cells.forEach((value, i) => {
        const td = document.createElement("td");
        if (i === 1) {
          const a = document.createElement("a");
          a.href = "/scan/" + encodeURIComponent(s.key);
          a.textContent = value;
          td.appendChild(a);
        } else {
          td.textContent = value;
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
  });
  showServer();
})();
