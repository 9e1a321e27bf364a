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
  // ?theme=light or dark in the address wins over the last toggle.
  var asked = /[?&]theme=(light|dark)(&|$)/.exec(location.search);
  if (asked) { root.className = asked[1]; } else if (saved === "light" || saved === "dark") { root.className = saved; }
  function toggle() {
    root.className = root.className === "light" ? "dark" : "light";
    try { localStorage.setItem("stepbox-theme", root.className); } catch (e) {}
  }
  button.hidden = false;
  button.addEventListener("click", toggle);
  document.addEventListener("keydown", function (e) { if (e.key === "t") { toggle(); } });
  // fit bounds the page by the screen, so a class never scrolls: it
  // hides the step record's last calls and shell lines (counted in its
  // "… N more" lines), then draws the panels smaller, then hides the
  // rest of the record.
  function over() { return root.scrollHeight > innerHeight || root.scrollWidth > innerWidth; }
  function lists() {
    // Start from every item sent: the spare ones show once the script runs.
    root.dataset.fitted = "yes";
    return Array.prototype.map.call(document.querySelectorAll("#step ol.calls, #step div.shell, #output div.tail"), function (l) {
      var shown = Array.prototype.filter.call(l.children, function (e) { return !e.classList.contains("more"); });
      shown.forEach(function (e) { e.hidden = false; });
      var more = l.querySelector(".more") || l.parentElement.querySelector(".more");
      more.textContent = "… " + more.dataset.cut + " more" + more.dataset.why;
      more.hidden = more.dataset.cut === "0";
      // An output's tail loses its first lines, a list its last.
      var tail = l.classList.contains("tail");
      return { shown: shown, more: more, keep: l.tagName === "OL" ? 2 : 1, tail: tail };
    });
  }
  function hideOne(ls, floor) {
    var best = null;
    ls.forEach(function (l) {
      if (l.shown.length > (floor ? l.keep : 0) && (!best || l.shown.length > best.shown.length)) { best = l; }
    });
    if (!best) { return false; }
    (best.tail ? best.shown.shift() : best.shown.pop()).hidden = true;
    best.hid = (best.hid || 0) + 1;
    best.more.textContent = "… " + (Number(best.more.dataset.cut) + best.hid) + " more" + best.more.dataset.why;
    best.more.hidden = false;
    return true;
  }
  function fit() {
    var svgs = document.querySelectorAll("svg.panel");
    Array.prototype.forEach.call(svgs, function (s) { s.style.maxHeight = ""; });
    var ls = lists();
    while (over() && hideOne(ls, true)) {}
    // Then the output's last line, before any drawing gets smaller:
    // its "… N more" line says the terminal has it.
    var tails = ls.filter(function (l) { return l.tail; });
    while (over() && hideOne(tails, false)) {}
    var heights = Array.prototype.map.call(svgs, function (s) { return s.getBoundingClientRect().height; });
    for (var scale = 0.95; over() && scale > 0.5; scale -= 0.05) {
      Array.prototype.forEach.call(svgs, function (s, i) { s.style.maxHeight = Math.floor(heights[i] * scale) + "px"; });
    }
    while (over() && hideOne(ls, false)) {}
  }
  fit();
  addEventListener("resize", fit);
  var events = new EventSource("events" + location.search);
  events.addEventListener("page", function (e) {
    main.innerHTML = e.data;
    fit();
    status.textContent = "live";
    status.className = "live";
  });
  events.onerror = function () {
    status.textContent = "stepbox is not answering: showing the last state";
    status.className = "lost";
  };
})();
