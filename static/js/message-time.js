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

  function refresh() {
    if (typeof Intl === "undefined" || !Intl.RelativeTimeFormat) return;
    var format;
    try {
      format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, { numeric: "auto" });
    } catch (error) {
      return; // a language the browser does not know: the server's text stays
    }
    var now = Date.now();
    document.querySelectorAll("time.message-time[datetime]").forEach(function (element) {
      var seconds = (now - Date.parse(element.dateTime)) / 1000;
      if (!(seconds >= 0 && seconds < DAY)) return;
      var text = phrase(format, seconds);
      if (element.textContent !== text) element.textContent = text;
    });
  }

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSwap", refresh);
  document.addEventListener("htmx:wsAfterMessage", refresh);
  setInterval(refresh, 30000);
})();
