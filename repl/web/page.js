// The live view's one script: it swaps in each redraw the server sends
// (server-sent events) and toggles the theme. It sends nothing back.
"use strict";
(function () {
  var root = document.documentElement;
  var main = document.getElementById("live");
  var status = document.getElementById("status");
  var button = document.getElementById("theme");
  var saved = null;
  try { saved = localStorage.getItem("stepbox-theme"); } catch (e) {}
  if (saved === "light" || saved === "dark") { root.className = saved; }
  function toggle() {
    root.className = root.className === "light" ? "dark" : "light";
    try { localStorage.setItem("stepbox-theme", root.className); } catch (e) {}
  }
  button.hidden = false;
  button.addEventListener("click", toggle);
  document.addEventListener("keydown", function (e) { if (e.key === "t") { toggle(); } });
  var events = new EventSource("events" + location.search);
  events.addEventListener("page", function (e) {
    main.innerHTML = e.data;
    status.textContent = "live";
    status.className = "live";
  });
  events.onerror = function () {
    status.textContent = "stepbox is not answering: showing the last state";
    status.className = "lost";
  };
})();
