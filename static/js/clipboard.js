// Copy buttons ([data-copy] names what to copy). navigator.clipboard exists only in a secure
// context (https or this machine): on a plain-http intranet the text is copied through a
// selection instead (a hidden textarea + document.execCommand("copy")). "Copied" is said
// only when one of the two worked; otherwise the button says it failed.
(function () {
  "use strict";

  var _ = window.gettext || function (s) { return s; };
  var SHOWN_FOR_MS = 2000;

  function copyBySelection(text) {
    var focused = document.activeElement;
    var buffer = document.createElement("textarea");
    buffer.className = "clipboard-buffer";
    buffer.value = text;
    buffer.setAttribute("readonly", "");
    buffer.setAttribute("aria-hidden", "true");
    document.body.appendChild(buffer);
    buffer.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    buffer.remove();
    if (focused && focused.focus) focused.focus({ preventScroll: true });
    return copied;
  }

  function copyText(text) {
    if (window.isSecureContext && navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyBySelection(text); }
      );
    }
    return Promise.resolve(copyBySelection(text));
  }

  function tell(button, copied) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = copied ? _("Copied") : _("Copy failed");
    button.dataset.copied = String(copied);
    var announcer = document.getElementById("announcer");
    if (announcer) {
      announcer.textContent = copied ? _("Copied to the clipboard.")
        : _("Copy failed: select the text and copy it with the keyboard.");
    }
    clearTimeout(Number(button.dataset.resetTimer));
    button.dataset.resetTimer = String(setTimeout(function () {
      button.textContent = button.dataset.label;
      delete button.dataset.copied;
    }, SHOWN_FOR_MS));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    copyText(source.innerText).then(function (copied) { tell(button, copied); });
  });
})();
