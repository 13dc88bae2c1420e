// The agent's screen-pop page: state buttons, the pop (WebSocket /ws/agent), and incident actions.
"use strict";
(() => {
  const { api, el, duration, t } = CTI;
  const $ = (id) => document.getElementById(id);
  let current = null;        // the pop on screen
  let answeredAt = null;     // ms epoch, for the call timer
  let wrapupUntil = null;
  // While the phone rings the caller is still waiting: the wait shown counts on from the pop's
  // (the server's figure at the ring, this page's clock since), and the answer sets the final one.
  let waitFrom = null;       // {seconds, at: ms epoch} while ringing
  window.__pops = [];        // [{uniqueid, event_at, shown_at}] for the latency benchmark

  function message(text, ok) {
    const m = $("message");
    m.textContent = text || "";
    m.className = text ? (ok ? "ok" : "error") : "";
  }

  function showAgent(agent) {
    if (!agent) return;
    const badge = $("agent-state");
    badge.textContent = t(agent.state);
    badge.className = "badge " + agent.state;
    badge.dataset.state = agent.state;
    $("state-reason").textContent = agent.reason || "";
    wrapupUntil = agent.state === "wrap_up" && agent.wrapup_until ? agent.wrapup_until * 1000 : null;
  }

  function list(id, items, render) {
    const ul = $(id);
    ul.replaceChildren();
    if (!items || !items.length) { ul.append(el("li", t("no_matches"), "muted")); return; }
    for (const item of items) ul.append(render(item));
  }

  function incidentItem(i) {
    const li = el("li");
    const a = el("a", i.number);
    a.href = "#"; a.dataset.number = i.number;
    a.addEventListener("click", (e) => { e.preventDefault(); loadIncident(i.number); });
    li.append(a, " ", el("span", t(i.state), "badge"), " ", el("span", i.category || i.symptom || ""));
    return li;
  }

  function fillIncident(inc) {
    const card = $("incident-card");
    card.dataset.number = inc ? inc.number : "";
    $("incident-number").textContent = inc ? inc.number : "";
    const open = $("incident-open");
    open.hidden = !inc;
    if (inc) open.href = "/incidents/" + encodeURIComponent(inc.number);
    $("incident-state").textContent = inc ? t(inc.state) : "";
    $("incident-state").dataset.state = inc ? inc.state : "";
    $("incident-path").textContent = inc ? inc.menu_path || "" : "";
    const f = $("classify-form");
    f.type.value = inc ? inc.type : "fault";
    f.priority.value = inc ? String(inc.priority) : "3";
    f.category.value = inc ? inc.category : "";
    f.symptom.value = inc ? inc.symptom : "";
  }

  function fillCaller(user, call) {
    const form = $("caller-form");
    $("caller-unknown").hidden = !!user;
    form.hidden = !user;
    for (const k of ["id", "name", "employee_no", "department", "location", "office_phone", "mobile", "email"]) {
      form.elements[k].value = user ? (user[k] ?? "") : "";
    }
    form.dataset.callerNumber = call ? call.caller_number : "";
  }

  function showPop(pop) {
    current = pop;
    const call = pop.call;
    const root = $("pop");
    root.dataset.uniqueid = call.uniqueid;
    root.className = "grid pop " + pop.phase;
    $("call-phase").textContent = t(pop.phase === "answered" ? "on_call" : "ringing");
    $("no-call").hidden = true;
    $("call-info").hidden = false;
    $("transfer-form").hidden = pop.phase !== "answered";
    $("call-number").textContent = call.caller_number + (call.caller_name ? " " + call.caller_name : "");
    $("call-queue").textContent = call.queue || "";
    showWait(call.wait_seconds);
    waitFrom = pop.phase === "ringing" ? { seconds: call.wait_seconds, at: Date.now() } : null;
    showHold(call.on_hold, call.hold_seconds);
    answeredAt = call.answered_at ? Date.parse(call.answered_at) : null;
    fillCaller(pop.caller, call);
    fillIncident(pop.incident);
    list("open-list", pop.open_incidents, incidentItem);
    list("recent-list", pop.recent_incidents, incidentItem);
    list("kb-list", pop.knowledge, (a) => { const li = el("li"); li.append(el("strong", a.title), " ", el("span", a.score, "score"), el("div", a.body.slice(0, 160), "muted")); return li; });
    list("ci-list", pop.cmdb, (c) => { const li = el("li"); li.append(el("strong", c.name), " ", el("span", c.status, "badge"), " ", el("span", c.owner, "muted")); return li; });
    if (pop.type === "pop" && pop.event_at) {
      window.__pops.push({ uniqueid: call.uniqueid, event_at: pop.event_at, sent_at: pop.sent_at, shown_at: Date.now() / 1000 });
    }
  }

  function showWait(seconds) {
    $("call-wait").textContent = String(Math.round(seconds));
  }

  function showHold(onHold, seconds) {
    const dd = $("call-hold");
    dd.dataset.onHold = onHold ? "1" : "0";
    dd.textContent = (seconds ?? 0) + (onHold ? " ⏸" : "");
  }

  // Transfer of my current call (POST /api/agent/me/transfer); the colleague's page pops as soon
  // as their phone rings. Blind: at once. Attended ("consult first", a colleague only): I talk to
  // them while the caller waits, then complete (my phone hangs up) or cancel (back to the caller).
  $("transfer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const mode = e.submitter && e.submitter.value === "attended" ? "attended" : "blind";
    try {
      await api("POST", "/api/agent/me/transfer", { kind: f.elements.kind.value, to: f.elements.to.value.trim(), mode });
      f.reset();
      if (mode === "attended") { $("consult-bar").hidden = false; f.hidden = true; }
    } catch (err) { $("message").textContent = err.message; }
  });
  $("transfer-form").elements.kind.addEventListener("change", (e) => {
    $("transfer-consult").hidden = e.target.value !== "agent";
  });
  for (const action of ["complete", "cancel"]) {
    $("consult-" + action).addEventListener("click", async () => {
      try {
        await api("POST", "/api/agent/me/transfer/attended", { action });
        $("consult-bar").hidden = true;
        $("transfer-form").hidden = action !== "cancel";
      } catch (err) { $("message").textContent = err.message; }
    });
  }

  function tick() {
    if (waitFrom) showWait(waitFrom.seconds + (Date.now() - waitFrom.at) / 1000);
    $("call-timer").textContent = answeredAt ? duration((Date.now() - answeredAt) / 1000) : "0:00";
    $("wrapup-left").textContent = wrapupUntil ? t("wrap_up") + " " + duration((wrapupUntil - Date.now()) / 1000) : "";
  }
  setInterval(tick, 500);

  async function refresh() {
    const me = await api("GET", "/api/agent/me");
    showAgent(me.agent);
    if (me.pop) showPop(me.pop);
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "hello") { showAgent(m.agent); if (m.pop) showPop(m.pop); document.body.dataset.ws = "open"; }
      else if (m.type === "pop") showPop(m);
      else if (m.type === "agent_state") showAgent(m.agent);
      else if (m.type === "hold" && current && current.call.uniqueid === m.uniqueid) showHold(m.on_hold, m.hold_seconds);
      else if (m.type === "answered" && current && current.call.uniqueid === m.call.uniqueid) {
        current.phase = "answered"; current.call = m.call;
        waitFrom = null;
        showWait(m.call.wait_seconds);
        answeredAt = Date.parse(m.call.answered_at);
        $("pop").className = "grid pop answered";
        $("transfer-form").hidden = false;
        $("call-phase").textContent = t("on_call");
      } else if ((m.type === "ended" || m.type === "ring_ended") && current && current.call.uniqueid === m.uniqueid) {
        answeredAt = null;
        waitFrom = null;
        $("call-phase").textContent = t("ended");
        $("pop").className = "grid pop ended";
        $("transfer-form").hidden = true;
        $("consult-bar").hidden = true;
      } else if (m.type === "resync") refresh();
      else if (m.type === "incident_alert") {
        // A new voicemail for the desk, or an incident of mine assigned or past its target.
        const box = $("incident-alerts");
        if (box) {
          const a = el("a", t("alert_" + m.kind) + " " + m.number + " " + (m.category || ""));
          a.href = "/incidents/" + encodeURIComponent(m.number);
          const li = el("li", null, "alert-" + m.kind);
          li.dataset.number = m.number;
          li.append(a);
          box.prepend(li);
          while (box.children.length > 5) box.lastChild.remove();
        }
      }
    };
    ws.onclose = () => { document.body.dataset.ws = "closed"; setTimeout(connect, 1000); };
  }

  async function act(fn) {
    try { const out = await fn(); message(t("saved"), true); return out; }
    catch (err) { message(err.message, false); return null; }
  }
  const number = () => $("incident-card").dataset.number;

  async function loadIncident(n) {
    const inc = await act(() => api("GET", "/api/incidents/" + encodeURIComponent(n)));
    if (inc) fillIncident(inc);
  }
  async function afterChange(inc) { if (inc && inc.number) fillIncident(inc); }

  $("btn-ready").onclick = () => act(() => api("POST", "/api/agent/me/state", { state: "ready" }));
  $("btn-pause").onclick = () => act(() => api("POST", "/api/agent/me/state", { state: "paused", reason: $("pause-reason").value }));
  $("btn-logout").onclick = () => act(() => api("POST", "/api/agent/me/state", { state: "logged_out" }));
  $("btn-take").onclick = async () => afterChange(await act(() => api("POST", `/api/incidents/${number()}/take`)));
  $("btn-callback").onclick = () => {
    const f = $("caller-form");
    const to = f.mobile.value.split(/[,;\s]+/)[0] || f.office_phone.value.split(/[,;\s]+/)[0] || f.dataset.callerNumber;
    act(() => api("POST", "/api/click-to-call", { number: to, incident: number() || undefined }));
  };
  $("caller-form").onsubmit = (e) => {
    e.preventDefault();
    const f = e.target, body = {};
    for (const k of ["name", "department", "location", "office_phone", "mobile", "email"]) body[k] = f.elements[k].value;
    act(() => api("PATCH", "/api/users/" + encodeURIComponent(f.elements.id.value), body));
  };
  $("classify-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    afterChange(await act(() => api("PATCH", "/api/incidents/" + number(), {
      type: f.type.value, priority: Number(f.priority.value), category: f.category.value, symptom: f.symptom.value })));
  };
  $("note-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    if (await act(() => api("POST", `/api/incidents/${number()}/notes`, { text: f.text.value, notify: f.notify.checked }))) f.text.value = "";
  };
  $("resolve-form").onsubmit = async (e) => {
    e.preventDefault();
    afterChange(await act(() => api("POST", `/api/incidents/${number()}/resolve`, { text: e.target.text.value })));
  };
  $("escalate-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    afterChange(await act(() => api("POST", `/api/incidents/${number()}/escalate`, { to: f.to.value, group: f.group.value, reason: f.reason.value })));
  };
  $("close-form").onsubmit = async (e) => {
    e.preventDefault();
    afterChange(await act(() => api("POST", `/api/incidents/${number()}/close`, { confirmed: e.target.confirmed.checked })));
  };

  fillIncident(null);
  connect();
})();
