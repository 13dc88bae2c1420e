// The agent page's WebRTC softphone (JsSIP): registers the agent's own endpoint to Asterisk over
// WSS with the credentials the server gives this session only, and answers, mutes, holds, keys
// DTMF, transfers and hangs up the queue's calls. Bundled by scripts/build-softphone into
// desk/web/static/softphone.js; the page loads it after common.js (CTI.api, CTI.t).
import * as JsSIP from "jssip";

// common.js declares CTI as a global binding of the page (not a window property).
/* global CTI */
const { api, t } = CTI;
const $ = (id) => document.getElementById(id);

// Asterisk on this very host (the sandbox, a one-box demo): Asterisk is offered only the page's
// loopback candidates, so media never heads for another machine's address. (Chromium gathers
// loopback candidates only when started with --allow-loopback-in-peer-connection.)
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;
const LOOPBACK_CANDIDATE = / (127\.\d+\.\d+\.\d+) (\d+) typ host/;

export function keepLoopback(sdp) {
  return sdp
    .split(/\r\n(?=m=)/)
    .map((section, i) => {
      if (i === 0) return section;
      const lines = section.split("\r\n");
      const found = lines.map((l) => l.startsWith("a=candidate:") && l.match(LOOPBACK_CANDIDATE)).find(Boolean);
      if (!found) return section;
      const [, ip, port] = found;
      return lines
        .filter((l) => !l.startsWith("a=candidate:") || LOOPBACK_CANDIDATE.test(l))
        .map((l) => (l.startsWith("m=") ? l.replace(/^(m=\S+ )\d+/, `$1${port}`) : l.startsWith("c=IN IP4 ") ? `c=IN IP4 ${ip}` : l))
        .join("\r\n");
    })
    .join("\r\n");
}

function start(root) {
  const audio = $("sp-audio");
  const state = { registration: "off", call: "idle", muted: false, held: false };
  const phone = { ua: null, session: null, state };
  window.__softphone = phone; // the tests read the RTP counters through it

  function show() {
    root.dataset.registration = state.registration;
    root.dataset.call = state.call;
    $("sp-status").textContent = t("sp_" + state.registration) + (state.call !== "idle" ? " · " + t("sp_" + state.call) : "");
    $("sp-answer").hidden = state.call !== "ringing";
    $("sp-hangup").hidden = state.call === "idle";
    for (const id of ["sp-mute", "sp-hold", "sp-dtmf-form", "sp-transfer-form"]) $(id).hidden = state.call !== "talking";
    $("sp-mute").textContent = t(state.muted ? "sp_unmute" : "sp_mute");
    $("sp-mute").setAttribute("aria-pressed", String(state.muted));
    $("sp-hold").textContent = t(state.held ? "sp_resume" : "sp_hold");
    $("sp-hold").setAttribute("aria-pressed", String(state.held));
  }

  function attachAudio(session) {
    const pc = session.connection;
    if (!pc) return;
    const stream = new MediaStream();
    for (const r of pc.getReceivers()) if (r.track) stream.addTrack(r.track);
    audio.srcObject = stream;
    audio.play().catch(() => {}); // autoplay may wait for a click; the RTP flows regardless
  }

  function onSession(session, loopbackOnly) {
    if (phone.session) { session.terminate({ status_code: 486 }); return; } // one call at a time
    phone.session = session;
    state.call = "ringing"; state.muted = false; state.held = false;
    session.on("sdp", (e) => {
      if (e.originator !== "local") return;
      if (loopbackOnly) e.sdp = keepLoopback(e.sdp);
      phone.sentSdp = e.sdp; // what Asterisk got (pc.localDescription keeps every candidate)
    });
    session.on("accepted", () => { state.call = "talking"; attachAudio(session); show(); });
    session.on("confirmed", () => attachAudio(session));
    session.on("hold", (e) => { if (e.originator === "local") { state.held = true; show(); } });
    session.on("unhold", (e) => { if (e.originator === "local") { state.held = false; show(); } });
    session.on("muted", () => { state.muted = true; show(); });
    session.on("unmuted", () => { state.muted = false; show(); });
    const done = () => { if (phone.session === session) { phone.session = null; state.call = "idle"; audio.srcObject = null; show(); } };
    session.on("ended", done);
    session.on("failed", done);
    show();
  }

  async function register() {
    let creds;
    try { creds = await api("GET", "/api/agent/me/softphone"); }
    catch (err) { state.registration = "failed"; show(); $("sp-error").textContent = err.message; return; }
    const host = new URL(creds.ws_url).hostname;
    const loopbackOnly = LOOPBACK.test(host);
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(creds.ws_url)],
      uri: creds.uri,
      authorization_user: creds.username,
      password: creds.password,
      display_name: creds.display_name,
      register: true,
      session_timers: false,
      user_agent: "CTI desk softphone (JsSIP)",
    });
    phone.ua = ua;
    state.registration = "registering"; show();
    ua.on("registered", () => { state.registration = "registered"; $("sp-error").textContent = ""; show(); });
    ua.on("unregistered", () => { state.registration = "unregistered"; show(); });
    ua.on("registrationFailed", (e) => { state.registration = "failed"; $("sp-error").textContent = e.cause || ""; show(); });
    ua.on("disconnected", () => { if (state.registration === "registered") { state.registration = "registering"; show(); } });
    ua.on("newRTCSession", (e) => { if (e.originator === "remote") onSession(e.session, loopbackOnly); });
    ua.start();
  }

  const media = { mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } };
  $("sp-answer").onclick = () => phone.session && phone.session.answer(media);
  $("sp-hangup").onclick = () => phone.session && phone.session.terminate();
  $("sp-mute").onclick = () => { if (!phone.session) return; if (state.muted) phone.session.unmute({ audio: true }); else phone.session.mute({ audio: true }); };
  $("sp-hold").onclick = () => { if (!phone.session) return; if (state.held) phone.session.unhold(); else phone.session.hold(); };
  $("sp-dtmf-form").onsubmit = (e) => {
    e.preventDefault();
    const digits = $("sp-dtmf").value.replace(/[^0-9*#A-D]/gi, "");
    if (phone.session && digits) phone.session.sendDTMF(digits, { transportType: "RFC2833", duration: 160, interToneGap: 100 });
    $("sp-dtmf").value = "";
  };
  $("sp-transfer-form").onsubmit = (e) => {
    e.preventDefault();
    const target = $("sp-transfer").value.trim();
    if (!phone.session || !/^[0-9*#+]{1,40}$/.test(target)) { $("sp-error").textContent = t("sp_bad_number"); return; }
    const host = new URL(phone.ua.configuration.uri.toString().replace(/^sip:/, "http://")).hostname;
    // A blind transfer: Asterisk takes the caller to `target` in the endpoint's context and
    // reports the outcome in NOTIFYs; the transferer hangs up its own leg once it succeeded.
    const session = phone.session;
    session.refer(`sip:${target}@${host}`, {
      eventHandlers: {
        accepted: () => session.terminate(),
        failed: (ev) => { $("sp-error").textContent = t("sp_transfer_failed") + (ev && ev.cause ? " (" + ev.cause + ")" : ""); },
      },
    });
  };
  window.addEventListener("beforeunload", () => phone.ua && phone.ua.stop());
  show();
  register();
}

const root = $("softphone");
if (root) start(root);
