// Keyboard focus through the conversation's redraws. The server replaces whole turns (an
// answer's end, a reconnect) and the whole conversation (a new version, a switch between
// versions): the focused control goes with them and the focus would fall to the page's start.
// - A turn redrawn: the focus goes to the same control of the new copy of that turn.
// - Regenerate, Retry, Edit: the focus goes to the new answer (the last turn).
// - ‹ / › between versions: the focus stays on the same arrow of the version now shown (the
//   other arrow when that one is disabled at the end).
// - Renamed (the header's Rename): the focus goes back to Rename.
(function () {
  "use strict";

  var INTENT_MS = 10000;
  var intent = null;   // {kind: "answer"} or {kind: "switch", turnId, previous}; until
  var held = null;     // {turnId, index, answer}: what had the focus before a message

  function focusables(turn) {
    return Array.prototype.slice.call(turn.querySelectorAll("a[href], button, summary, textarea, input:not([type=hidden]), select"));
  }
  function focusAnswer(turn) {
    var answer = turn && turn.querySelector(".message.assistant");
    if (!answer) return;
    answer.tabIndex = -1;
    answer.focus();
  }
  function focusLost() {
    var active = document.activeElement;
    return !active || active === document.body || !document.contains(active);
  }

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    var action = form && form.querySelector && form.querySelector("input[name=action]");
    if (!action) return;
    if (action.value === "switch") {
      var arrows = form.parentNode.querySelectorAll("form");
      intent = { kind: "switch", turnId: form.querySelector("input[name=turn_id]").value, previous: form === arrows[0] };
    } else if (["regenerate", "retry", "edit"].indexOf(action.value) >= 0) {
      intent = { kind: "answer" };
    } else {
      return;
    }
    intent.until = Date.now() + INTENT_MS;
  });

  document.addEventListener("htmx:wsBeforeMessage", function () {
    var active = document.activeElement;
    var turn = active && active.closest && active.closest("#turns > article.turn");
    held = null;
    if (!turn) return;
    held = { turnId: turn.id, index: focusables(turn).indexOf(active), answer: active.matches(".message.assistant") };
  });

  function applyIntent() {
    var kind = intent.kind;
    if (kind === "answer") {
      var turns = document.querySelectorAll("#turns > article.turn");
      focusAnswer(turns[turns.length - 1]);
    } else {
      var shown = document.getElementById("turn-" + intent.turnId);
      var arrows = shown ? shown.querySelectorAll(".branches button") : [];
      var wanted = intent.previous ? arrows[0] : arrows[arrows.length - 1];
      var other = intent.previous ? arrows[arrows.length - 1] : arrows[0];
      var target = wanted && !wanted.disabled ? wanted : other;
      if (target) target.focus(); else focusAnswer(shown);
    }
    intent = null;
  }

  // Renamed: the title is redrawn with its Rename control, which takes the focus back.
  var renaming = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    renaming = Boolean(event.detail.elt.closest && event.detail.elt.closest("#thread-title"));
  });
  document.addEventListener("htmx:afterSettle", function () {
    var summary = document.querySelector("#thread-title summary");
    if (renaming && focusLost() && summary) summary.focus();
    renaming = false;
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    if (intent && Date.now() > intent.until) intent = null;
    if (!focusLost()) return;
    if (intent) { applyIntent(); return; }
    var turn = held && document.getElementById(held.turnId);
    if (!turn) return;
    if (held.answer) { focusAnswer(turn); return; }
    var again = focusables(turn)[held.index];
    if (again) again.focus({ preventScroll: true });
  });
})();
