// Switchboard's own small script: Enter to send, follow the stream, copy buttons, Escape to stop.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded before this file) translates; without it, English.
  var gettext = window.gettext || function (text) { return text; };

  function turns() { return document.getElementById("turns"); }

  // Follow the stream unless the reader scrolled up to read something earlier.
  var following = true;
  function nearBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 80; }
  function scrollToEnd() { var el = turns(); if (el) el.scrollTop = el.scrollHeight; }
  document.addEventListener("scroll", function (event) {
    if (event.target === turns()) following = nearBottom(event.target);
  }, true);
  document.addEventListener("htmx:wsAfterMessage", function () { if (following) scrollToEnd(); });
  // At load, in the first frame rather than in DOMContentLoaded: reading the height lays the
  // whole page out, which the frame does anyway; in DOMContentLoaded it was done twice, in the
  // load's longest task (issue 20).
  document.addEventListener("DOMContentLoaded", function () { requestAnimationFrame(scrollToEnd); });

  // "Show earlier messages": the turns above appear without moving what the reader sees (the
  // distance from the bottom is kept); the next such button, if any, takes the focus.
  var fromBottom = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var el = turns();
    if (el && event.detail.shouldSwap && event.detail.target.id === "earlier") {
      fromBottom = el.scrollHeight - el.scrollTop;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    var el = turns();
    if (fromBottom === null || !el) return;
    el.scrollTop = el.scrollHeight - fromBottom;
    fromBottom = null;
    var next = document.querySelector("#earlier button");
    if (next) next.focus({ preventScroll: true });
  });

  // Enter sends, Shift+Enter makes a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.id === "message" && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      // A message may be only attached files (static/js/attachments.js).
      if (box.value.trim() || box.form.querySelector(".attachment-chip input")) box.form.requestSubmit();
    }
    if (event.key === "Escape" && !event.defaultPrevented) {  // shortcuts.js closes things first
      var stop = document.querySelector("button.stop");
      if (stop) stop.click();
    }
  });

  // A message sent over the socket follows the answer (composer.js clears the box once the
  // server took the message).
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "composer") { following = true; scrollToEnd(); }
  });

  // On every (re)connection the socket says what the page already shows: the last turn on
  // screen, and how many finished blocks of each live answer it holds. The server then sends
  // only what is missing, so a dropped network resumes with no gap and nothing twice.
  // The query is read by chat/live.py (parse_resume); the markers are fragments.offset_marker.
  if (window.htmx) {
    // The websocket extension reconnects after an abnormal close: 1006 (network, or a connect
    // that failed), 1011 (server error), 1012 (this worker is restarting: the next connection
    // reaches another one), 1013. Its delay is random ("full jitter", so the pages of a stopped
    // worker do not all come back at once); here it grows to 10 s at most, not 64 s.
    htmx.config.wsReconnectDelay = function (retryCount) {
      return Math.random() * Math.min(10000, 500 * Math.pow(2, retryCount));
    };
    htmx.createWebSocket = function (url) {
      var articles = document.querySelectorAll("#turns > article.turn");
      var leaf = articles.length ? articles[articles.length - 1].id.replace("turn-", "") : "";
      var resume = [];
      document.querySelectorAll("#turns span[data-blocks]").forEach(function (marker) {
        resume.push(marker.id.split("-")[1] + ":" + marker.dataset.blocks + ":" + marker.dataset.reasoning);
      });
      var query = "leaf=" + leaf + (resume.length ? "&resume=" + resume.join(",") : "");
      var socket = new WebSocket(url + (url.indexOf("?") < 0 ? "?" : "&") + query, []);
      socket.binaryType = htmx.config.wsBinaryType;
      return socket;
    };
  }

  // The websocket's state, for the user (and for tests): reconnecting is shown, not silent.
  function setConnection(state) {
    var conversation = document.getElementById("conversation");
    if (conversation) conversation.dataset.socket = state;
  }
  document.addEventListener("htmx:wsOpen", function () { setConnection("open"); });
  // A chat taken away from this page (no longer shared, deleted) takes its title along.
  document.addEventListener("htmx:wsAfterMessage", function () {
    var header = document.querySelector("#chat-header[data-page-title]");
    if (header) document.title = header.dataset.pageTitle;
  });
  document.addEventListener("htmx:wsClose", function () { setConnection("closed"); });

  // A copy button on every code block, including those that arrive over the socket.
  function addCodeCopyButtons(root) {
    root.querySelectorAll(".markdown pre.code:not([data-copyable])").forEach(function (pre, index) {
      pre.dataset.copyable = "";
      if (!pre.id) pre.id = "code-" + Date.now().toString(36) + "-" + index;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code";
      button.textContent = gettext("Copy");
      button.setAttribute("aria-label", gettext("Copy code"));
      button.dataset.copy = "#" + pre.id + " code";
      pre.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { addCodeCopyButtons(document); });
  document.addEventListener("htmx:wsAfterMessage", function () { addCodeCopyButtons(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    addCodeCopyButtons(document);
    // A refused form comes back with its errors: take the reader to the first one.
    var invalid = event.detail.target.querySelector("[aria-invalid='true']");
    if (invalid) { invalid.focus(); invalid.scrollIntoView({ block: "center" }); }
  });

  // "Load image from <host>": the reader chose to load this image. Our image page
  // (chat/image_viewer.py) opens in a frame in place of the link, sized to the image: the chat
  // page's Content-Security-Policy does not let it load another host's image itself. An image
  // loaded once opens again by itself when its message is redrawn (end of a stream, reconnect).
  // A click with a modifier key keeps the link's own behaviour (open the image page in a tab).
  var loadedImages = new Set();
  // The frame is named after the image's host (the link's text is in the answer's language).
  function imageTitle(link) {
    var host = "";
    try { host = new URL(new URL(link.href).searchParams.get("src")).host; } catch (error) { /* no src */ }
    var interpolate = window.interpolate || function (format, values) { return format.replace("%s", values[0]); };
    return interpolate(gettext("Image from %s"), [host]);
  }
  function openRemoteImage(link) {
    var frame = document.createElement("iframe");
    frame.className = "remote-image-frame";
    frame.title = imageTitle(link);
    frame.setAttribute("sandbox", "allow-same-origin");
    frame.referrerPolicy = "no-referrer";
    frame.addEventListener("load", function () {
      var image = frame.contentDocument && frame.contentDocument.querySelector("img");
      var loaded = Boolean(image && image.naturalWidth);
      frame.dataset.loaded = String(loaded);
      if (loaded) {
        frame.style.width = image.naturalWidth + "px";
        frame.style.aspectRatio = image.naturalWidth + " / " + image.naturalHeight;
      }
    });
    frame.src = link.href;
    link.replaceWith(frame);
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a.remote-image");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    loadedImages.add(link.getAttribute("href"));
    openRemoteImage(link);
  });
  function reopenRemoteImages() {
    if (!loadedImages.size) return;
    document.querySelectorAll("a.remote-image").forEach(function (link) {
      if (loadedImages.has(link.getAttribute("href"))) openRemoteImage(link);
    });
  }
  document.addEventListener("htmx:wsAfterMessage", reopenRemoteImages);
  document.addEventListener("htmx:afterSwap", reopenRemoteImages);

  // A closed <details> may hold its form in a <template> (a turn's Edit, the feedback comment):
  // Chromium looks at every text field of a page as it loads, and each one cost a style and
  // layout pass in the load's longest task (issue 20). The form is made when the details opens:
  // on the summary's click (before it opens, so the form is there at once) or on "toggle".
  function openDetailsContent(details) {
    var template = details && details.querySelector(":scope > template.details-content");
    if (!template) return;
    var made = Array.prototype.slice.call(template.content.children);
    template.replaceWith(template.content);
    if (window.htmx) made.forEach(function (element) { htmx.process(element); });
  }
  document.addEventListener("click", function (event) {
    var summary = event.target.closest && event.target.closest("details > summary");
    if (summary) openDetailsContent(summary.parentNode);
  });
  document.addEventListener("toggle", function (event) {
    if (event.target.open) openDetailsContent(event.target);
  }, true);

  // A panel's close button (Settings, Share) empties the panel.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-close-panel]");
    var panel = button && button.closest("#settings-panel");
    if (panel) panel.replaceChildren();
  });
  // Copy buttons ([data-copy]): clipboard.js.
})();
