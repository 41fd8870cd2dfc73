// Times: shown in the browser's local time with their age; the UTC value stays on hover.
"use strict";
(function () {
  function age(ms) {
    var s = Math.round(Math.abs(ms) / 1000), future = ms < 0;
    var text = s < 60 ? s + " s" : s < 3600 ? Math.round(s / 60) + " min"
      : s < 86400 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }
  var now = Date.now();
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) { return; }
    el.textContent = when.toLocaleString();
    var small = document.createElement("span");
    small.className = "age";
    small.textContent = " (" + age(now - when.getTime()) + ")";
    el.after(small);
  });
})();
