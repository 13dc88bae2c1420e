// The incident workbench: filters, sorting and pages over every incident (the server does
// them); ages and SLA timers tick every second; the list reloads every 15 s and on desk news.
"use strict";
(() => {
  const { api, el, duration, t } = CTI;
  const $ = (id) => document.getElementById(id);
  const form = $("filters");
  let rows = [], loadedAt = Date.now(), page = 1, total = 0, limit = 50;

  // The filters live in the address, so a reload or a shared link shows the same list.
  const params = new URLSearchParams(location.search);
  for (const [k, v] of params) {
    const f = form.elements[k];
    if (!f) continue;
    if (f.type === "checkbox") f.checked = v === "1"; else f.value = v;
  }
  page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);

  function query() {
    const q = new URLSearchParams();
    for (const f of form.elements) {
      if (!f.name) continue;
      if (f.type === "checkbox") { if (f.checked) q.set(f.name, "1"); }
      else if (f.value) q.set(f.name, f.value);
    }
    if (page > 1) q.set("page", String(page));
    return q;
  }

  function slaCell(i, passed) {
    const td = el("td", "", "num sla");
    td.dataset.standing = i.sla_standing;
    if (i.sla_standing === "breached") {
      td.textContent = t("breached") + " (" + i.sla_breaches.map((b) => t("sla_" + b)).join(", ") + ")";
      return td;
    }
    const left = i.resolved_at ? i.sla_remaining_seconds : i.sla_remaining_seconds - passed;
    td.textContent = (i.sla_standing === "due_soon" ? t("due_soon") + " " : "") + duration(left);
    return td;
  }

  function render() {
    const body = document.querySelector("#incidents tbody");
    const passed = (Date.now() - loadedAt) / 1000;
    if (!rows.length) { body.replaceChildren(el("tr", null)); body.firstChild.append(el("td", t("no_matches"), "muted")); }
    else body.replaceChildren(...rows.map((i) => {
      const tr = el("tr");
      tr.dataset.number = i.number;
      if (i.sla_standing === "breached") tr.className = "breached";
      else if (i.sla_standing === "due_soon") tr.className = "due-soon";
      const a = el("a", i.number);
      a.href = "/incidents/" + encodeURIComponent(i.number);
      const num = el("td"); num.append(a);
      if (i.channel === "voicemail") num.append(" ", el("span", t("voicemail"), "badge"));
      tr.append(num, el("td", t(i.state)), el("td", "P" + i.priority, "num"), el("td", t(i.type)),
        el("td", i.category), el("td", i.requester.name || i.caller_number), el("td", i.assignee || ""),
        el("td", i.escalated_to || ""), el("td", duration(i.age_seconds + passed), "num"), slaCell(i, passed));
      return tr;
    }));
    const pages = Math.max(1, Math.ceil(total / limit));
    $("page-info").textContent = page + " / " + pages + " (" + total + ")";
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pages;
  }

  async function load() {
    try {
      const q = query();
      history.replaceState(null, "", "?" + q.toString());
      q.set("limit", String(limit));
      const data = await api("GET", "/api/incidents?" + q.toString());
      rows = data.incidents; total = data.total;
      loadedAt = Date.now();
      render();
      $("message").textContent = "";
    } catch (err) { $("message").textContent = err.message; }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); page = 1; load(); });
  form.addEventListener("change", () => { page = 1; load(); });
  $("prev").onclick = () => { page = Math.max(1, page - 1); load(); };
  $("next").onclick = () => { page += 1; load(); };

  $("new-incident").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const body = { type: f.type.value, channel: f.channel.value, priority: parseInt(f.priority.value, 10),
      symptom: f.symptom.value, category: f.category.value };
    if (f.caller_number.value) body.caller_number = f.caller_number.value;
    if (f.account.value) body.account = f.account.value;
    try {
      if (f.employee_no.value) {
        const found = await api("GET", "/api/users?q=" + encodeURIComponent(f.employee_no.value));
        const user = (found.users || []).find((u) => u.employee_no === f.employee_no.value.trim());
        if (!user) throw new Error(t("no_such_employee") + " " + f.employee_no.value);
        body.user_id = user.id;
      }
      const inc = await api("POST", "/api/incidents", body);
      location.href = "/incidents/" + inc.number;
    } catch (err) { $("message").textContent = err.message; }
  });

  // Desk news (a new voicemail, a breach) over the agent socket: show it and reload.
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/desk");
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type !== "incident_alert") return;
      const box = $("desk-alerts");
      const a = el("a", t("alert_" + msg.kind) + " " + msg.number + " " + (msg.category || ""));
      a.href = "/incidents/" + encodeURIComponent(msg.number);
      const div = el("div", null, "banner alert-" + msg.kind);
      div.dataset.number = msg.number;
      div.append(a);
      box.prepend(div);
      while (box.children.length > 5) box.lastChild.remove();
      load();
    };
    ws.onclose = () => setTimeout(connect, 5000);
  }
  connect();
  load();
  setInterval(render, 1000);
  setInterval(load, 15000);
})();
