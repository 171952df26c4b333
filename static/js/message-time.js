// Each message's time says "3 minutes ago" (templates/chat/message_meta.html, rendered by the
// server with Django's naturaltime). While the page stays open that text would go stale, and a
// turn that arrives over the socket was rendered once for every viewer: so the text of times
// under a day old is rewritten in the page's language (<html lang>) when it appears and every
// 30 seconds. Older ones keep the server's wording; the exact time stays in the title.
(function () {
  "use strict";
  var DAY = 86400;
  var UNITS = [["hour", 3600], ["minute", 60], ["second", 1]];

  function phrase(format, seconds) {
    if (seconds < 10) return format.format(0, "second"); // "now"
    for (var i = 0; i < UNITS.length; i++) {
      var size = UNITS[i][1];
      if (seconds >= size) return format.format(-Math.floor(seconds / size), UNITS[i][0]);
    }
    return format.format(0, "second");
  }

  // One formatter per language: making one loads the language's data (about 10 ms the first
  // time in a new tab), and refresh runs after every message of the socket.
  var formats = {};
  function formatFor(lang) {
    if (!(lang in formats)) {
      try {
        formats[lang] = new Intl.RelativeTimeFormat(lang || undefined, { numeric: "auto" });
      } catch (error) {
        formats[lang] = null; // a language the browser does not know: the server's text stays
      }
    }
    return formats[lang];
  }

  function refresh() {
    if (typeof Intl === "undefined" || !Intl.RelativeTimeFormat) return;
    var format = formatFor(document.documentElement.lang);
    if (!format) return;
    var now = Date.now();
    document.querySelectorAll("time.message-time[datetime]").forEach(function (element) {
      var seconds = (now - Date.parse(element.dateTime)) / 1000;
      if (!(seconds >= 0 && seconds < DAY)) return;
      var text = phrase(format, seconds);
      if (element.textContent !== text) element.textContent = text;
    });
  }

  // At load the server's text is fresh: the first rewrite, which makes the formatter, waits
  // until the browser is idle, in a task of its own rather than in the load's (issue 20) or in
  // the socket's first message; once the formatter exists, rewrites are immediate.
  var idleQueued = false;
  function refreshSoon() {
    if (document.documentElement.lang in formats) { refresh(); return; }
    if (idleQueued) return;
    idleQueued = true;
    var run = function () { idleQueued = false; refresh(); };
    if (window.requestIdleCallback) requestIdleCallback(run, { timeout: 2000 });
    else setTimeout(run, 200);
  }
  document.addEventListener("DOMContentLoaded", refreshSoon);
  document.addEventListener("htmx:afterSwap", refreshSoon);
  document.addEventListener("htmx:wsAfterMessage", refreshSoon);
  setInterval(refresh, 30000);
})();
