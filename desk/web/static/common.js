// Shared by the staff pages: the CSRF token, JSON calls, texts, and text-only DOM writes.
"use strict";
const CTI = (() => {
  const csrf = document.querySelector('meta[name="csrf"]')?.content || "";
  const textsEl = document.getElementById("texts");
  const texts = textsEl ? JSON.parse(textsEl.dataset.texts) : {};
  async function api(method, url, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const resp = await fetch(url, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const err = new Error((data && (data.message || data.error)) || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  }
  return { csrf, texts, api, el, duration, t: (k) => texts[k] || k };
})();
