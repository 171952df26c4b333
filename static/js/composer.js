// The message box never loses what was typed.
// - A message leaves the box only when the server said it took it: each send carries a
//   request id, and the socket's reply names it, accepted or refused with the reason
//   (chat/fragments.py action_receipt, the hidden #action-receipt). Refused: the text stays.
// - A message sent while an answer is being written, while the socket is away or while the
//   previous one is unanswered waits in a visible queue ("Queued", with Cancel) and goes when
//   the answer ends; a refused queued message comes back into the box.
// - The box is kept per chat in localStorage (with anything still queued), so a reload or a
//   closed tab finds it again; a message the server took is removed from it.
(function () {
  "use strict";

  var _ = window.gettext || function (s) { return s; };
  var ANSWER_TIMEOUT_MS = 20000;   // no reply to a send by then: it is given back to the box
  var TURN_WAIT_MS = 5000;         // a taken message's turn shows up well before this
  var NEW_CHAT_SENT = "switchboard.newChatSent";

  var queue = [];          // [{params, text}], oldest first
  var pending = null;      // {id, params, text, fromBox, timer}: sent, not yet answered
  var expectingTurn = false;
  var expectingTimer = null;
  var socket = null;       // the websocket extension's socket wrapper
  var connected = false;

  function box() { return document.getElementById("message"); }
  function composer() { return document.getElementById("composer"); }
  function busy() {
    var state = document.getElementById("composer-state");
    return Boolean(state && state.dataset.busy === "true");
  }
  function threadId() {
    var conversation = document.getElementById("conversation");
    var match = conversation && /\/ws\/threads\/(\d+)\//.exec(conversation.getAttribute("ws-connect") || "");
    return match ? match[1] : "";
  }
  function draftKey(id) { return "switchboard.draft." + (id || "new"); }
  function say(text) {
    var announcer = document.getElementById("announcer");
    if (announcer) announcer.textContent = text;
  }
  function newRequestId() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  }

  // -- drafts ---------------------------------------------------------------------------------

  function storage(action, session) {
    try { return action(session ? window.sessionStorage : window.localStorage); }
    catch (error) { return null; }  // storage turned off: the box still works, without drafts
  }
  function saveDraft() {
    var el = box();
    if (!el) return;
    var parts = queue.map(function (item) { return item.text; });
    if (pending && !pending.fromBox) parts.unshift(pending.text);
    parts.push(el.value);
    var text = parts.filter(function (part) { return part.trim(); }).join("\n\n");
    storage(function (store) {
      if (text) store.setItem(draftKey(threadId()), text);
      else store.removeItem(draftKey(threadId()));
    });
  }
  function restoreDraft() {
    var el = box();
    if (!el) return;
    // The first message of a new chat was taken (we are on its page now): forget its draft.
    if (storage(function (store) { return store.getItem(NEW_CHAT_SENT); }, true)) {
      storage(function (store) { store.removeItem(NEW_CHAT_SENT); }, true);
      if (threadId()) storage(function (store) { store.removeItem(draftKey("")); });
    }
    if (el.value) { saveDraft(); return; }  // the server gave the text back (a refusal)
    var draft = storage(function (store) { return store.getItem(draftKey(threadId())); });
    if (draft) {
      el.value = draft;
      el.setSelectionRange(draft.length, draft.length);
    }
  }
  document.addEventListener("DOMContentLoaded", restoreDraft);
  document.addEventListener("input", function (event) { if (event.target === box()) saveDraft(); });
  document.addEventListener("submit", function (event) {
    if (event.target.id === "new-chat-form") storage(function (store) { store.setItem(NEW_CHAT_SENT, "1"); }, true);
  });

  // -- the queue ------------------------------------------------------------------------------

  function renderQueue() {
    var list = document.getElementById("composer-queue");
    var form = composer();
    if (!queue.length) { if (list) list.remove(); return; }
    if (!list && form) {
      list = document.createElement("ul");
      list.id = "composer-queue";
      list.className = "composer-queue";
      list.setAttribute("aria-label", _("Queued messages"));
      form.parentNode.insertBefore(list, form);
    }
    if (!list) return;
    list.replaceChildren();
    queue.forEach(function (item, index) {
      var row = document.createElement("li");
      var label = document.createElement("span");
      label.className = "queued-label";
      label.textContent = _("Queued");
      var text = document.createElement("span");
      text.className = "queued-text";
      text.textContent = item.text;
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "link queued-cancel";
      cancel.textContent = _("Cancel");
      cancel.dataset.queueIndex = String(index);
      row.append(label, " ", text, " ", cancel);
      list.appendChild(row);
    });
  }

  function giveBack(text) {
    var el = box();
    if (!el) return;
    el.value = el.value.trim() ? text + "\n\n" + el.value : text;
    saveDraft();
  }

  function enqueue(params, text) {
    queue.push({ params: params, text: text });
    var el = box();
    if (el) el.value = "";
    renderQueue();
    saveDraft();
    say(connected ? _("Queued: it is sent when the answer ends.") : _("Queued: it is sent when the connection is back."));
  }

  document.addEventListener("click", function (event) {
    var cancel = event.target.closest(".queued-cancel");
    if (!cancel) return;
    var item = queue.splice(Number(cancel.dataset.queueIndex), 1)[0];
    renderQueue();
    if (item) giveBack(item.text);
    var el = box();
    if (el) el.focus();
    say(_("Queued message cancelled; its text is back in the message box."));
  });

  // -- sending and the server's answer --------------------------------------------------------

  function startPending(params, text, fromBox) {
    params.request_id = newRequestId();
    pending = { id: params.request_id, params: params, text: text, fromBox: fromBox,
      timer: setTimeout(unanswered, ANSWER_TIMEOUT_MS) };
  }

  // No reply (the socket went away meanwhile): the text is not thrown away.
  function unanswered() {
    if (!pending) return;
    var lost = pending;
    pending = null;
    clearTimeout(lost.timer);
    if (!lost.fromBox) giveBack(lost.text);
    var error = document.getElementById("composer-error");
    if (error) error.textContent = _("No answer from the server: your message is still in the box. Check the conversation before sending it again.");
  }

  function settle(accepted) {
    var done = pending;
    pending = null;
    clearTimeout(done.timer);
    if (accepted) {
      expectingTurn = true;
      clearTimeout(expectingTimer);
      expectingTimer = setTimeout(function () { expectingTurn = false; pump(); }, TURN_WAIT_MS);
      var el = box();
      if (done.fromBox && el && el.value === done.text) el.value = "";
      var form = composer();
      if (form) form.querySelectorAll("input[name=compare_models]:checked").forEach(function (tick) { tick.checked = false; });
    } else if (!done.fromBox) {
      giveBack(done.text);  // the reason is in #composer-error
    }
    saveDraft();
  }

  function pump() {
    if (pending || !connected || !socket || busy() || expectingTurn || !queue.length) return;
    var next = queue.shift();
    renderQueue();
    startPending(next.params, next.text, false);
    socket.send(JSON.stringify(next.params), composer());
  }

  document.addEventListener("htmx:wsConfigSend", function (event) {
    var form = event.detail.elt || event.target;
    if (!form || form.id !== "composer") return;
    var params = event.detail.parameters;
    var text = String(params.message || "");
    if (pending || !connected || busy() || expectingTurn || queue.length) {
      event.preventDefault();
      if (text.trim()) enqueue(Object.assign({}, params), text);
      return;
    }
    startPending(params, text, true);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var receipt = document.getElementById("action-receipt");
    if (pending && receipt && receipt.dataset.request === pending.id) {
      settle(receipt.dataset.outcome === "accepted");
    }
    if (expectingTurn && busy()) { expectingTurn = false; clearTimeout(expectingTimer); }
    pump();
  });

  document.addEventListener("htmx:wsOpen", function (event) {
    connected = true;
    socket = event.detail.socketWrapper;
    pump();
  });
  document.addEventListener("htmx:wsClose", function () {
    connected = false;
    if (pending) unanswered();
  });
  // Whatever is still queued when the page goes is kept as the draft (not sent by itself).
  window.addEventListener("pagehide", saveDraft);
})();
