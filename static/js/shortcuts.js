// Keyboard: Ctrl/Cmd+Shift+O opens a new chat (anywhere, as in other chat products); "?"
// outside a text field opens the list of shortcuts (templates/chat/shortcuts.html); Escape
// closes what is open (a dialog, a menu, the Settings/Share panel) before it stops an answer
// (app.js stops only when nothing here took the key). Closing a panel gives the focus back to
// the button that opened it.
(function () {
  "use strict";

  var panelOpener = null;   // the Settings or Share button last used
  var dialogOpener = null;

  function inTextField(target) {
    return Boolean(target.closest && target.closest("input, textarea, select, [contenteditable]:not([contenteditable='false'])"));
  }
  function refocus(element) {
    if (element && document.contains(element)) element.focus();
  }

  function openShortcuts() {
    var dialog = document.getElementById("shortcuts-dialog");
    if (!dialog || dialog.open) return;
    dialogOpener = document.activeElement;
    dialog.showModal();
  }
  document.addEventListener("close", function (event) {
    if (event.target.id === "shortcuts-dialog") refocus(dialogOpener);
  }, true);

  function closePanel() {
    var panel = document.getElementById("settings-panel");
    if (!panel || !panel.children.length) return false;
    panel.replaceChildren();
    refocus(panelOpener);
    return true;
  }

  // An open menu (a <details>) holding the focus closes, the focus going to its summary.
  function closeMenu(target) {
    var menu = target.closest && target.closest("details[open]");
    if (!menu) return false;
    menu.open = false;
    var summary = menu.querySelector("summary");
    if (summary) summary.focus();
    return true;
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[aria-controls='settings-panel']");
    if (opener) panelOpener = opener;
    // app.js empties the panel on its close button; the focus goes back where it came from.
    if (event.target.closest("[data-close-panel]")) refocus(panelOpener);
  });

  // Capture phase: before app.js's Escape-to-stop (prompts.js, also capturing, comes first).
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing) return;
    var key = event.key || "";
    if ((event.ctrlKey || event.metaKey) && event.shiftKey && !event.altKey && key.toLowerCase() === "o") {
      event.preventDefault();
      var link = document.querySelector("a.new-chat");
      window.location.assign(link ? link.href : "/");
      return;
    }
    if (key === "?" && !event.ctrlKey && !event.metaKey && !event.altKey && !inTextField(event.target)) {
      if (document.getElementById("shortcuts-dialog")) { event.preventDefault(); openShortcuts(); }
      return;
    }
    if (key !== "Escape") return;
    var dialog = document.querySelector("dialog[open]");
    if (dialog) { event.preventDefault(); dialog.close(); return; }
    if (closeMenu(event.target) || closePanel()) event.preventDefault();
  }, true);
})();
