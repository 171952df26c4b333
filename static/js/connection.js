// The websocket's state, said to the user: when it drops, a polite "Reconnecting…" (a status
// region, not an alert), Send disabled and who-is-viewing cleared until it is back; then
// "Connected again." A message typed meanwhile waits in the composer's queue (composer.js);
// other actions (regenerate, switch versions…) are refused with a word instead of waiting
// silently in the websocket extension's own queue.
(function () {
  "use strict";

  var _ = window.gettext || function (s) { return s; };
  // The close codes after which the websocket extension tries again (see app.js).
  var RETRIED = [1006, 1011, 1012, 1013];
  var SAID_FOR_MS = 5000;
  var state = "connecting";  // then "open", "reconnecting" or "closed" (no retry)
  var clearTimer = null;

  function status(text) {
    var region = document.getElementById("connection-status");
    if (!region) return;
    clearTimeout(clearTimer);
    region.textContent = text;
    region.dataset.state = state;
  }

  // Send works only on an open socket (before the first opening the composer queues).
  function applySendState() {
    var usable = state === "open" || state === "connecting";
    document.querySelectorAll("#composer-state button.send").forEach(function (button) {
      button.disabled = !usable;
    });
  }

  document.addEventListener("htmx:wsOpen", function () {
    var was = state;
    state = "open";
    applySendState();
    if (was === "reconnecting") {
      status(_("Connected again."));
      clearTimer = setTimeout(function () { status(""); }, SAID_FOR_MS);
    }
  });

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event && event.detail.event.code;
    var retrying = RETRIED.indexOf(code) >= 0 && document.getElementById("conversation");
    if (state === "closed") return;
    state = retrying ? "reconnecting" : "closed";
    applySendState();
    if (retrying) status(_("Reconnecting…"));
    // Who is viewing is unknown until the socket is back (the server sends it again).
    var presence = document.getElementById("presence");
    if (presence) presence.replaceChildren();
  });

  // The server redraws the composer's buttons: keep Send as the connection allows.
  document.addEventListener("htmx:wsAfterMessage", applySendState);

  document.addEventListener("htmx:wsConfigSend", function (event) {
    var form = event.detail.elt || event.target;
    if (state === "open" || state === "connecting" || !form || form.id === "composer") return;
    event.preventDefault();
    status(state === "reconnecting"
      ? _("Reconnecting… try again when the connection is back.")
      : _("Not connected. Reload the page."));
  });
})();
