// The lead's console pages: forms and buttons that call the JSON API (data-api, data-method),
// errors shown next to the form as the server words them (the field is named), and the few
// page-specific parts (hours, directory, routing). No inline script: the CSP forbids it.
"use strict";
(() => {
  const { api, el, t } = CTI;

  function show(box, text, ok) {
    if (!box) return;
    box.textContent = text;
    box.className = "msg " + (ok ? "ok" : "error");
    box.hidden = false;
  }

  function localIso(value) {
    // <input type=datetime-local> gives "2026-11-30T08:00": the server reads it in the desk's zone.
    return value ? value + (value.length === 16 ? ":00" : "") : null;
  }

  function collect(form) {
    const body = {};
    for (const input of form.querySelectorAll("[name]")) {
      if (input.name === "csrf" || input.disabled) continue;
      const kind = input.dataset.kind || "";
      if (input.type === "checkbox") { body[input.name] = input.checked; continue; }
      let v = input.value;
      if (kind === "skip-empty" && v === "") continue;
      if (kind === "datetime") v = localIso(v);
      else if (kind === "null-empty") v = v === "" ? null : v;
      body[input.name] = v;
    }
    return body;
  }

  // The server's message starts with the field it refuses ("email: ...", "mobile must be ...",
  // "weekly.sat[1]: ..."): that input of the form is marked and focused, so the lead sees which.
  function markField(node, text) {
    for (const old of node.querySelectorAll("[aria-invalid]")) old.removeAttribute("aria-invalid");
    const m = /^([a-z_]+)(?:\.([a-z]+))?/.exec(text || "");
    if (!m) return;
    const names = m[2] ? [`${m[1]}-${m[2]}`, m[1]] : [m[1]];
    const input = names.map((n) => node.querySelector(`[name="${n}"]`)).find(Boolean);
    if (!input) return;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  async function send(node, method, url, body, reload) {
    const box = node.querySelector(".msg") || document.getElementById(node.dataset.msg || "message");
    try {
      const data = await api(method, url, body);
      markField(node, "");
      show(box, t("saved"), true);
      if (reload) setTimeout(() => location.reload(), 300);
      return data;
    } catch (e) {
      markField(node, e.message);
      show(box, e.message, false);
      return null;
    }
  }

  for (const form of document.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      send(form, form.dataset.method || "POST", form.dataset.api, collect(form), form.dataset.reload !== undefined);
    });
  }
  for (const button of document.querySelectorAll("button[data-api]")) {
    button.addEventListener("click", () => {
      let body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
      if (button.dataset.now) body = { [button.dataset.now]: new Date().toISOString() };
      const scope = button.closest("[data-msg-scope]") || document.body;
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      send(scope, button.dataset.method || "POST", button.dataset.api, body, button.dataset.reload !== undefined);
    });
  }

  // -- opening hours: the form becomes the hours document; preview without saving ------------
  const hoursForm = document.getElementById("hours-form");
  function hoursDoc() {
    const weekly = {};
    for (const input of hoursForm.querySelectorAll("[data-day]")) {
      weekly[input.dataset.day] = input.value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
    }
    const lines = (name) => hoursForm.querySelector(`[name=${name}]`).value.split("\n")
      .map((s) => s.trim()).filter(Boolean).map((s) => s.split(/\s+/));
    return {
      timezone: hoursForm.querySelector("[name=timezone]").value.trim(),
      weekly,
      holidays: lines("holidays").map(([from, to, ...name]) =>
        ({ from, to: to || from, name: name.join(" ") })),
      workdays: lines("workdays").map(([date, as]) => ({ date, as: as || "" })),
      oncall_number: hoursForm.querySelector("[name=oncall_number]").value.trim(),
    };
  }
  function drawCalendar(days) {
    const box = document.getElementById("calendar");
    box.replaceChildren();
    let month = null, grid = null;
    for (const d of days) {
      if (d.date.slice(0, 7) !== month) {
        month = d.date.slice(0, 7);
        const wrap = el("div", null, "month");
        wrap.append(el("h3", month));
        grid = el("div", null, "cal");
        for (let i = 0; i < d.weekday; i++) grid.append(el("span", "", "pad"));
        wrap.append(grid);
        box.append(wrap);
      }
      const cell = el("span", null, "day " + d.state);
      cell.dataset.date = d.date;
      cell.title = [d.name, d.as, d.hours.join(" ")].filter(Boolean).join(" · ");
      cell.append(el("b", d.date.slice(8)));
      cell.append(el("small", d.name || (d.hours.length ? d.hours[0].slice(0, 5) : "")));
      grid.append(cell);
    }
  }
  if (hoursForm) {
    const box = hoursForm.querySelector(".msg");
    const said = (data) => {
      document.getElementById("said-zh").textContent = data.said.zh;
      document.getElementById("said-en").textContent = data.said.en;
    };
    document.getElementById("hours-preview").addEventListener("click", async () => {
      try { const data = await api("POST", "/api/hours/preview", hoursDoc()); drawCalendar(data.calendar); said(data); box.hidden = true; }
      catch (e) { markField(hoursForm, e.message); show(box, e.message, false); }
    });
    hoursForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const data = await send(hoursForm, "PUT", "/api/hours", hoursDoc());
      if (data) { drawCalendar(data.calendar); said(data); }
    });
  }

  // -- user directory: history, CSV import, LDAP sync --------------------------------------
  for (const button of document.querySelectorAll("button[data-history]")) {
    button.addEventListener("click", async () => {
      const data = await api("GET", `/api/users/${button.dataset.history}/history`);
      const body = document.querySelector("#history tbody");
      body.replaceChildren();
      for (const c of data.history) {
        const tr = el("tr");
        for (const v of [c.at.slice(0, 16).replace("T", " "), c.by, c.field, c.old, c.new]) tr.append(el("td", v));
        body.append(tr);
      }
      document.getElementById("history-of").textContent = `${data.user.employee_no} ${data.user.name}`;
      document.getElementById("history").hidden = false;
    });
  }
  const importForm = document.getElementById("import-form");
  if (importForm) {
    importForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const box = importForm.querySelector(".msg");
      const file = importForm.querySelector("input[type=file]").files[0];
      if (!file) return;
      const bytes = new Uint8Array(await file.arrayBuffer());
      let bin = "";
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      const resp = await fetch("/api/users/import", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CTI.csrf },
        body: JSON.stringify({ csv_base64: btoa(bin) }),
      });
      const data = await resp.json().catch(() => ({}));
      if (resp.ok) show(box, `${t("saved")}: +${data.created} / ${data.updated} / ${data.unchanged}`, true);
      else show(box, (data.errors || [data.message || data.error]).join("\n"), false);
    });
  }
  for (const button of document.querySelectorAll("button[data-sync]")) {
    button.addEventListener("click", async () => {
      const out = document.getElementById("sync-result");
      try {
        const data = await api("POST", "/api/directory/sync", { dry_run: button.dataset.sync === "dry" });
        out.className = "";
        out.textContent = JSON.stringify(data, null, 1);
      } catch (e) { out.className = "error"; out.textContent = e.message; }
    });
  }

  // -- routing: the YAML editor, and a test message per channel ----------------------------
  const routingForm = document.getElementById("routing-form");
  if (routingForm) {
    routingForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      // Reloaded once saved: the test buttons are the channels of the configuration now in force.
      send(routingForm, "PUT", "/api/routing", { text: routingForm.querySelector("textarea").value }, true);
    });
  }
  for (const button of document.querySelectorAll("button[data-test-channel]")) {
    button.addEventListener("click", async () => {
      const box = document.getElementById("test-result");
      try {
        const r = await api("POST", "/api/routing/test", { channel: button.dataset.testChannel });
        show(box, `${r.channel}: ${r.status || ""} ${r.error || ""}`, !r.error);
      } catch (e) { show(box, e.message, false); }
    });
  }
})();
