// The wallboard: a snapshot over the WebSocket on every change; waits tick locally between pushes.
"use strict";
(() => {
  const { el, duration, t } = CTI;
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
      el("td", isTotal ? t("total") : q.queue),
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

  function render() {
    if (!snap) return;
    const passed = (Date.now() - receivedAt) / 1000;
    const body = document.querySelector("#queues tbody");
    body.replaceChildren(...snap.queues.map((q) => queueRow(q, false)), queueRow(snap.total, true));
    const banners = document.getElementById("banners");
    banners.replaceChildren(...snap.banners.map((b) => {
      const div = el("div", `${t("backed_up")}: ${b.queue} — ` + Object.entries(b.rules).map(([k, v]) => `${k}=${v === null ? "∞" : Math.round(v * 10) / 10}`).join(", "), "banner");
      div.dataset.queue = b.queue;
      return div;
    }));
    document.querySelector("#agents tbody").replaceChildren(...snap.agents.map((a) => {
      const tr = el("tr");
      tr.dataset.ext = a.ext;
      tr.dataset.state = a.state;
      tr.append(el("td", a.ext), el("td", a.name), el("td", t(a.state) + (a.reason ? ` (${a.reason})` : "")),
        el("td", duration(Date.now() / 1000 - a.since)), el("td", a.call ? `${a.call.caller_number} ${a.call.incident_number || ""}` : ""));
      return tr;
    }));
    document.querySelector("#waiting tbody").replaceChildren(...snap.waiting_calls.map((c) => {
      const tr = el("tr");
      tr.dataset.uniqueid = c.uniqueid;
      tr.append(el("td", c.queue), el("td", c.caller_number), el("td", c.incident_number || ""), el("td", duration(c.wait + passed), "num"));
      return tr;
    }));
    const lang = document.querySelector('meta[name="lang"]').content;
    document.getElementById("ticker").textContent = snap.announcements.map((a) => `【${a.title}】${lang === "en" && a.text_en ? a.text_en : a.text_zh}`).join("　　");
    document.getElementById("updated").textContent = new Date(snap.at * 1000).toLocaleTimeString();
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/wallboard");
    ws.onopen = () => { document.getElementById("conn").textContent = ""; document.body.dataset.ws = "open"; };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "wallboard" && m.queues) { snap = m; receivedAt = Date.now(); window.__boards = (window.__boards || 0) + 1; render(); }
      else if (m.type === "resync") fetch("/api/wallboard").then((r) => r.json()).then((s) => { snap = s; receivedAt = Date.now(); render(); });
    };
    ws.onclose = () => { document.body.dataset.ws = "closed"; document.getElementById("conn").textContent = t("ws_lost"); setTimeout(connect, 1000); };
  }
  setInterval(render, 1000);
  connect();
})();
