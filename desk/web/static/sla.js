// The service catalogue and SLA: the document is checked by the server, which names the field.
"use strict";
(() => {
  const { api, t } = CTI;
  const form = document.getElementById("sla-form");
  const box = form.querySelector(".msg");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    box.hidden = false;
    let doc;
    try { doc = JSON.parse(form.doc.value); } catch (err) { box.className = "msg error"; box.textContent = err.message; return; }
    try {
      await api("PUT", "/api/sla", doc);
      box.className = "msg ok"; box.textContent = t("saved");
      setTimeout(() => location.reload(), 600);
    } catch (err) { box.className = "msg error"; box.textContent = err.message; }
  });
})();
