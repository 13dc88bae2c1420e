// The open-incident list: ages and SLA timers tick every second; the list reloads every 15 s.
"use strict";
(() => {
  const { api, el, duration, t } = CTI;
  let rows = [], loadedAt = Date.now();
  function render() {
    const body = document.querySelector("#incidents tbody");
    const passed = (Date.now() - loadedAt) / 1000;
    body.replaceChildren(...rows.map((i) => {
      const tr = el("tr");
      tr.dataset.number = i.number;
      const left = i.resolved_at ? i.sla_remaining_seconds : i.sla_remaining_seconds - passed;
      if (left < 0) tr.className = "breached";
      tr.append(el("td", i.number), el("td", t(i.state)), el("td", i.priority, "num"), el("td", t(i.type)),
        el("td", i.category), el("td", i.requester.name || i.caller_number), el("td", i.assignee || ""),
        el("td", duration(i.age_seconds + passed), "num"),
        el("td", left < 0 ? t("breached") + " " + duration(-left) : duration(left), "num"));
      return tr;
    }));
  }
  async function load() {
    try {
      const mine = document.getElementById("mine").checked ? "&mine=1" : "";
      rows = (await api("GET", "/api/incidents?state=open" + mine)).incidents;
      loadedAt = Date.now();
      render();
    } catch (err) { document.getElementById("message").textContent = err.message; }
  }
  document.getElementById("mine").onchange = load;
  load();
  setInterval(render, 1000);
  setInterval(load, 15000);
})();
