// One incident: its details, history, calls and voicemail, and every action of the pop.
"use strict";
(() => {
  const { api, el, t } = CTI;
  const $ = (id) => document.getElementById(id);
  const number = $("incident").dataset.number;
  const base = "/api/incidents/" + encodeURIComponent(number);
  let inc = null;

  function message(text, ok) {
    const m = $("message");
    m.textContent = text || "";
    m.className = text ? (ok ? "ok" : "error") : "";
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  function link(n) { const a = el("a", n); a.href = "/incidents/" + encodeURIComponent(n); return a; }
  function links(id, items) {
    const dd = $(id);
    dd.replaceChildren();
    for (const i of items) dd.append(link(i.number), " ", el("span", t(i.state), "badge"), " ");
  }

  function show(data) {
    inc = data;
    $("inc-state").textContent = t(data.state);
    $("inc-state").dataset.state = data.state;
    const sla = $("inc-sla");
    sla.dataset.standing = data.sla_standing;
    sla.textContent = data.sla_standing === "breached"
      ? t("breached") + " (" + data.sla_breaches.map((b) => t("sla_" + b)).join(", ") + ")"
      : t(data.sla_standing === "due_soon" ? "due_soon" : "on_time");
    sla.className = "badge sla-" + data.sla_standing;
    $("inc-created").textContent = when(data.created_at);
    $("inc-channel").textContent = t(data.channel);
    $("inc-assignee").textContent = data.assignee || "";
    $("inc-group").textContent = data.escalated_to || "";
    $("inc-response-due").textContent = when(data.response_due_at) + (data.responded_at ? " ✓ " + when(data.responded_at) : "");
    $("inc-resolve-due").textContent = when(data.sla_due_at);
    $("inc-account").textContent = data.account || "";
    $("inc-parent").replaceChildren(...(data.parent ? [link(data.parent.number)] : []));
    links("inc-children", data.children);
    links("inc-duplicates", data.duplicates);
    $("inc-merged-into").replaceChildren(...(data.merged_into ? [link(data.merged_into)] : []));
    const r = data.requester;
    for (const [id, v] of [["req-name", r.name], ["req-department", r.department], ["req-location", r.location],
      ["req-office", r.office_phone], ["req-mobile", r.mobile], ["req-email", r.email], ["req-caller", data.caller_number]]) {
      $(id).textContent = v || "";
    }
    const f = $("classify-form");
    f.type.value = data.type; f.priority.value = String(data.priority);
    f.category.value = data.category; f.symptom.value = data.symptom;
    f.service.value = data.service || ""; f.config_item.value = data.config_item || "";
    f.account.value = data.account || "";
    const player = $("voicemail-player");
    $("voicemail").hidden = !data.recording_url;
    if (data.recording_url && player.getAttribute("src") !== data.recording_url) player.src = data.recording_url;
    const calls = $("calls");
    const players = new Map([...calls.querySelectorAll("audio[data-recording]")].map((a) => [a.dataset.recording, a]));
    calls.replaceChildren();
    if (!data.calls.length) calls.append(el("li", t("no_matches"), "muted"));
    for (const c of data.calls) {
      const li = el("li");
      li.dataset.uniqueid = c.uniqueid;
      li.append(el("span", when(c.arrived_at)), " ", el("span", c.caller_number || ""), " ",
        el("span", c.agent || c.queue || ""), " ", el("span", t(c.outcome || "live"), "badge"));
      if (c.recording_url) {
        const a = el("a", t("voicemail")); a.href = c.recording_url; a.target = "_blank";
        li.append(" ", a);
      }
      for (const r of c.recordings || []) {
        // The call's recording (role-checked by /recordings/{id}); kept across refreshes so
        // that the 15 s reload does not stop someone listening.
        const old = players.get(String(r.id));
        const player = old || el("audio", "", "recording");
        if (!old) {
          player.controls = true; player.preload = "none"; player.src = r.url;
          player.dataset.recording = String(r.id); player.title = t("call_recording");
        }
        li.append(" ", player);
      }
      calls.append(li);
    }
    const mails = $("emails");
    mails.replaceChildren();
    if (!data.emails.length) mails.append(el("li", t("no_matches"), "muted"));
    for (const m of data.emails) {
      const li = el("li");
      li.dataset.direction = m.direction;
      li.append(el("span", when(m.at), "muted"), " ",
        el("span", m.direction === "in" ? "← " + (m.from || "") : "→ " + (m.to || ""), "badge"), " ",
        el("b", m.subject || ""));
      if (m.status && m.status !== "sent" && m.direction !== "in") li.append(" ", el("span", m.status, "badge"));
      const body = el("pre", m.body || "", "mail-body");
      li.append(body);
      for (const a of m.attachments) {
        const link = el("a", a.filename); link.href = "/api/mail/attachments/" + a.id;
        li.append(" 📎 ", link);
      }
      mails.append(li);
    }
    const hist = $("history");
    hist.replaceChildren(...data.history.slice().reverse().map((h) => {
      const li = el("li");
      li.dataset.kind = h.kind;
      li.append(el("span", when(h.at), "muted"), " ", el("b", h.by), " ",
        el("span", h.to ? t(h.to) : t("event_" + h.kind)), " ", el("span", h.text || ""));
      return li;
    }));
    const closed = data.state === "closed";
    for (const id of ["btn-take", "btn-assign", "btn-note", "btn-resolve", "btn-escalate", "btn-merge", "btn-parent"]) $(id).disabled = closed;
    $("btn-reopen").disabled = data.state !== "resolved";
    $("btn-close").disabled = data.state !== "resolved";
    $("btn-resolve").disabled = closed || data.state === "resolved";
  }

  async function load() {
    try { show(await api("GET", base)); } catch (err) { message(err.message); }
  }

  async function act(method, path, body, done) {
    try {
      const out = await api(method, base + path, body);
      if (out && out.refused) message(out.refused[document.querySelector('meta[name="lang"]').content] || out.refused.zh);
      else message(done || t("saved"), true);
      await load();
      return out;
    } catch (err) { message(err.message); return null; }
  }
  const text = () => $("action-text").value;
  const notify = () => $("notify").checked;

  $("classify-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target;
    act("PATCH", "", { type: f.type.value, priority: parseInt(f.priority.value, 10), category: f.category.value,
      symptom: f.symptom.value, service: f.service.value, config_item: f.config_item.value, account: f.account.value });
  });
  $("btn-take").onclick = () => act("POST", "/take");
  $("btn-assign").onclick = () => act("POST", "/assign", { assignee: $("assign-to").value });
  $("btn-note").onclick = () => act("POST", "/notes", { text: text(), notify: notify() });
  $("btn-resolve").onclick = () => act("POST", "/resolve", { text: text(), notify: notify() || undefined });
  $("btn-reopen").onclick = () => act("POST", "/reopen", { text: text() });
  $("btn-close").onclick = () => {
    if (!window.confirm(t("confirm_close"))) return;
    act("POST", "/close", { confirmed: true, text: text() });
  };
  $("btn-escalate").onclick = () => act("POST", "/escalate", { to: $("escalate-to").value,
    group: $("escalate-group").value, reason: $("escalate-reason").value, notify: notify() });
  $("btn-merge").onclick = () => {
    const into = $("merge-into").value.trim();
    if (!window.confirm(t("confirm_merge") + " " + into)) return;
    act("POST", "/merge", { into });
  };
  $("btn-parent").onclick = () => {
    const p = $("parent-number").value.trim();
    act("POST", "/parent", { parent: p || null });
  };
  load();
  setInterval(load, 15000);
})();
