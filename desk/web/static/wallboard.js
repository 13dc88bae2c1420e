// The wallboard: a snapshot over the WebSocket on every change; waits tick locally between pushes.
"use strict";
(() => {
  const { el, duration, t, api } = CTI;

  // Listen, whisper or barge: the lead's phone rings first (POST /api/supervise, audited).
  function spyButtons(a) {
    const td = el("td");
    if (!a.call) return td;
    for (const mode of ["listen", "whisper", "barge"]) {
      const b = el("button", t(mode), "spy");
      b.type = "button";
      b.dataset.mode = mode;
      b.onclick = () => api("POST", "/api/supervise", { agent: a.ext, mode }).catch(() => {});
      td.append(b);
    }
    return td;
  }
  let snap = null, receivedAt = 0;
  const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
  const secs = (x) => (x === null || x === undefined ? "–" : Math.round(x) + "s");

  function colour(td, value, key, higherIsWorse) {
    const th = snap.thresholds[key];
    if (!th || value === null || value === undefined) return td;
    const [amber, red] = th;
    const bad = higherIsWorse ? value >= red : value <= red;
    const warn = higherIsWorse ? value >= amber : value <= amber;
    td.className = bad ? "red" : warn ? "amber" : "";
    td.dataset.level = bad ? "red" : warn ? "amber" : "ok";
    return td;
  }

  function queueRow(q, isTotal) {
    const passed = (Date.now() - receivedAt) / 1000;
    const tr = el("tr", null, isTotal ? "total" : "");
    tr.dataset.queue = q.queue;
    const longest = q.waiting ? q.longest_wait + passed : 0;
    const d = q.today, a = q.agents;
    tr.append(
      el("td", isTotal ? t("total") : q.label || q.queue),
      colour(el("td", q.waiting, "num"), q.waiting, "waiting", true),
      colour(el("td", duration(longest), "num"), longest, "longest_wait", true),
      el("td", a.ready), el("td", a.on_call + a.ringing), el("td", a.wrap_up), el("td", a.paused), el("td", a.logged_out),
      el("td", d.offered), el("td", d.answered), el("td", d.abandoned), el("td", d.overflowed),
      colour(el("td", pct(d.service_level)), d.service_level, "service_level", false),
      el("td", secs(d.asa)), el("td", secs(d.aht)),
      colour(el("td", pct(d.abandon_rate)), d.abandon_rate, "abandon_rate", true),
      el("td", isTotal ? "" : q.arrival_rate_per_hour));
    for (const [i, key] of [[1, "waiting"], [2, "longest_wait"], [8, "offered"], [9, "answered"], [10, "abandoned"], [11, "overflowed"], [12, "service_level"], [13, "asa"], [14, "aht"], [15, "abandon_rate"]]) {
      tr.children[i].dataset.metric = key;
    }
    return tr;
  }

  const lang = document.querySelector('meta[name="lang"]').content;
  const tv = document.getElementById("board").dataset.mode === "tv";
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }

  if (tv) document.body.classList.add("tv-body");

  function drawChart(chart) {
    const box = document.getElementById("chart");
    if (!box || !chart) return;
    const W = 960, H = 200, pad = 22, n = chart.calls.length;
    const top = Math.max(1, ...chart.calls, ...chart.forecast);
    const bw = (W - pad) / n, y = (v) => H - pad - (v / top) * (H - 2 * pad);
    const parts = [];
    chart.calls.forEach((v, i) => parts.push(svg("rect", { x: pad + i * bw + 1, y: y(v), width: bw - 2, height: H - pad - y(v), class: "bar" })));
    const points = chart.forecast.map((v, i) => `${pad + i * bw + bw / 2},${y(v)}`).join(" ");
    parts.push(svg("polyline", { points, class: "forecast", fill: "none" }));
    for (let h = 0; h <= 24; h += 3) {
      const label = svg("text", { x: pad + h * 2 * bw, y: H - 4, class: "axis" });
      label.textContent = String(h).padStart(2, "0") + ":00";
      parts.push(label);
    }
    const maxLabel = svg("text", { x: 0, y: pad, class: "axis" });
    maxLabel.textContent = String(Math.round(top));
    parts.push(maxLabel);
    box.replaceChildren(...parts);
  }

  function tile(name, text, value, key, higherIsWorse) {
    const box = document.querySelector(`[data-tile="${name}"]`);
    if (!box) return;
    box.querySelector(".big").textContent = text;
    const probe = colour(el("td"), value, key, higherIsWorse);
    box.dataset.level = probe.dataset.level || "ok";
  }

  function renderTv(passed) {
    const total = snap.total, d = total.today, a = total.agents;
    const longest = total.waiting ? total.longest_wait + passed : 0;
    tile("waiting", total.waiting, total.waiting, "waiting", true);
    tile("longest_wait", duration(longest), longest, "longest_wait", true);
    tile("service_level", pct(d.service_level), d.service_level, "service_level", false);
    tile("asa", secs(d.asa), null, "asa", true);
    tile("abandon_rate", pct(d.abandon_rate), d.abandon_rate, "abandon_rate", true);
    const counts = { ready: a.ready, on_call: a.on_call + a.ringing, wrap_up: a.wrap_up, paused: a.paused, logged_out: a.logged_out };
    for (const [state, n] of Object.entries(counts)) {
      const b = document.querySelector(`[data-state="${state}"] b`);
      if (b) b.textContent = n;
    }
    document.getElementById("queue-strip").replaceChildren(...snap.queues.map((q) => {
      const li = el("li", `${q.label || q.queue}: ${q.waiting} · ${duration(q.waiting ? q.longest_wait + passed : 0)}`);
      li.dataset.queue = q.queue;
      return li;
    }));
    drawChart(snap.chart);
  }

  function renderSla() {
    const inc = snap.incidents;
    if (!inc) return;
    for (const key of ["breached", "due_soon", "open"]) {
      const span = document.querySelector(`[data-sla="${key}"]`);
      span.querySelector("b").textContent = inc[key];
      span.dataset.level = key === "breached" && inc.breached ? "red" : key === "due_soon" && inc.due_soon ? "amber" : "ok";
    }
    const body = document.querySelector("#sla-worst tbody");
    if (!body) return;
    body.replaceChildren(...inc.worst.map((i) => {
      const tr = el("tr", null, "breached");
      tr.dataset.number = i.number;
      tr.append(el("td", i.number), el("td", "P" + i.priority), el("td", i.category), el("td", i.assignee || ""),
        el("td", i.breaches.map((b) => t("sla_" + b)).join(", ")));
      return tr;
    }));
  }

  function tick() {
    // The desk's time zone, not the screen's: "today" and the clock are the desk's.
    if (!snap) return;
    const clock = new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: snap.timezone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });
    document.getElementById("clock").textContent = clock.format(new Date());
  }

  // Several sites: every row names its site, and the select shows one site's rows and total.
  const sitePick = document.getElementById("site");
  if (sitePick) {
    const asked = new URLSearchParams(location.search).get("site");
    if (asked && [...sitePick.options].some((o) => o.value === asked)) sitePick.value = asked;
    sitePick.addEventListener("change", () => { if (raw) { snap = view(raw); render(); } });
  }
  let raw = null;
  function view(s) {
    const multi = s.sites && s.sites.length > 1;
    const label = (q) => (multi ? { ...q, label: `${q.queue} · ${q.site}` } : q);
    const site = sitePick ? sitePick.value : "";
    if (!site) return { ...s, queues: s.queues.map(label) };
    const mine = (x) => x.site === site;
    return { ...s, queues: s.queues.filter(mine).map(label), total: s.sites.find(mine) || s.total,
      agents: s.agents.filter(mine), waiting_calls: s.waiting_calls.filter(mine) };
  }

  function render() {
    if (!snap) return;
    tick();
    const passed = (Date.now() - receivedAt) / 1000;
    const body = document.querySelector("#queues tbody");
    body.replaceChildren(...snap.queues.map((q) => queueRow(q, false)), queueRow(snap.total, true));
    const banners = document.getElementById("banners");
    banners.replaceChildren(...snap.banners.map((b) => {
      // The server words the rules (cti/routing/alerts.py describe()) in both languages.
      const words = b.text ? b.text[lang] || b.text.zh : "";
      const div = el("div", `${t("backed_up")}: ${b.queue} — ${words}`, "banner");
      div.dataset.queue = b.queue;
      return div;
    }));
    document.querySelector("#agents tbody").replaceChildren(...snap.agents.map((a) => {
      const tr = el("tr");
      tr.dataset.ext = a.ext;
      tr.dataset.state = a.state;
      tr.append(el("td", a.ext), el("td", a.name), el("td", t(a.state) + (a.reason ? ` (${a.reason})` : "")),
        el("td", duration(Date.now() / 1000 - a.since)), el("td", a.call ? `${a.call.caller_name || ""} ${a.call.caller_number} ${a.call.incident_number ? "#" + a.call.incident_number : ""}${a.call.on_hold ? " ⏸" : ""}`.trim() : ""), spyButtons(a));
      return tr;
    }));
    document.querySelector("#waiting tbody").replaceChildren(...snap.waiting_calls.map((c) => {
      const tr = el("tr");
      tr.dataset.uniqueid = c.uniqueid;
      tr.append(el("td", c.queue), el("td", c.caller_number), el("td", c.incident_number || ""), el("td", duration(c.wait + passed), "num"));
      return tr;
    }));
    if (tv) renderTv(passed);
    renderSla();
    document.getElementById("ticker").textContent = snap.announcements.map((a) => `【${a.title}】${lang === "en" && a.text_en ? a.text_en : a.text_zh}`).join("　　");
    document.getElementById("updated").textContent = tv ? "" : new Date(snap.at * 1000).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: snap.timezone });
  }

  let retry = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/wallboard");
    ws.onopen = () => { retry = 1000; document.getElementById("conn").textContent = ""; document.body.dataset.ws = "open"; window.__opens = (window.__opens || 0) + 1; };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "wallboard" && m.queues) { raw = m; snap = view(m); receivedAt = Date.now(); window.__boards = (window.__boards || 0) + 1; render(); }
      else if (m.type === "resync") fetch("/api/wallboard").then((r) => r.json()).then((s) => { raw = s; snap = view(s); receivedAt = Date.now(); render(); });
    };
    ws.onclose = () => { document.body.dataset.ws = "closed"; document.getElementById("conn").textContent = t("ws_lost"); ws.onmessage = null; ws.onclose = null; setTimeout(connect, retry); retry = Math.min(retry * 2, 30000); };
  }
  setInterval(render, 1000);
  connect();
})();
