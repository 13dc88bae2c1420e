// The call log reloads itself every 5 s to show live calls, except while a recording is being
// listened to (a reload would stop the player).
"use strict";
(() => {
  const busy = () => [...document.querySelectorAll("audio")].some((a) => !a.paused || a.currentTime > 0);
  setInterval(() => { if (!busy()) location.reload(); }, 5000);
})();
