// The prompt library in the composer: "/" at the start of the message box lists the prompts
// (an accessible listbox: arrows move, Enter chooses, Escape closes); a chosen prompt asks for
// its variables in a small form, then its filled text replaces the "/…" in the box.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded before this file) translates; without it, English.
  var gettext = window.gettext || function (text) { return text; };

  var menu = null;       // the open listbox, or null
  var items = [];        // the prompts it lists
  var active = -1;       // the highlighted option
  var requested = 0;     // the latest menu request (older answers are ignored)

  function box() { return document.getElementById("message"); }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (error) { return ""; }
  }

  function closeMenu() {
    if (menu) menu.remove();
    menu = null; items = []; active = -1;
    var el = box();
    // No aria-expanded: a textarea cannot be a combobox (ARIA in HTML), axe reports it.
    if (el) { el.removeAttribute("aria-controls"); el.removeAttribute("aria-activedescendant"); }
  }

  function highlight(index) {
    if (!menu || !items.length) return;
    active = (index + items.length) % items.length;
    menu.querySelectorAll("[role=option]").forEach(function (option, i) {
      option.setAttribute("aria-selected", i === active ? "true" : "false");
    });
    var chosen = document.getElementById("prompt-option-" + active);
    box().setAttribute("aria-activedescendant", chosen.id);
    chosen.scrollIntoView({ block: "nearest" });
  }

  function showMenu(prompts) {
    var el = box();
    closeMenu();
    menu = document.createElement("ul");
    menu.id = "prompt-menu";
    menu.className = "prompt-menu";
    menu.setAttribute("role", "listbox");
    menu.setAttribute("aria-label", gettext("Prompts"));
    items = prompts;
    if (!prompts.length) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = gettext("No prompt matches. Manage prompts from the sidebar.");
      menu.appendChild(none);
    }
    prompts.forEach(function (prompt, i) {
      var option = document.createElement("li");
      option.id = "prompt-option-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      var name = document.createElement("strong");
      name.textContent = prompt.name;
      var preview = document.createElement("span");
      preview.className = "muted";
      preview.textContent = (prompt.team ? " (" + prompt.team + ") " : " ") + prompt.preview;
      option.appendChild(name);
      option.appendChild(preview);
      option.addEventListener("mousedown", function (event) { event.preventDefault(); choose(prompt.id); });
      menu.appendChild(option);
    });
    el.parentNode.insertBefore(menu, el);
    el.setAttribute("aria-controls", "prompt-menu");
    if (prompts.length) highlight(0);
  }

  function refreshMenu() {
    var el = box();
    var match = /^\/(\S*)$/.exec(el.value);
    if (!match) { closeMenu(); return; }
    var ticket = ++requested;
    fetch("/prompts/menu/?q=" + encodeURIComponent(match[1]), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) { if (ticket === requested && /^\/\S*$/.test(box().value)) showMenu(data.prompts); })
      .catch(function () { closeMenu(); });
  }

  function closeForm() {
    var form = document.getElementById("prompt-variables");
    if (form) form.remove();
  }

  function insert(text) {
    var el = box();
    el.value = text;
    el.focus();
    el.setSelectionRange(text.length, text.length);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function submitVariables(form) {
    var error = form.querySelector("[data-prompt-error]");
    return fetch(form.action, {
      // URL-encoded: an empty multipart body (a prompt without variables) is a 400 in Django.
      method: "POST", credentials: "same-origin", body: new URLSearchParams(new FormData(form)),
      headers: { "X-CSRFToken": csrfToken() }
    }).then(function (response) { return response.json(); }).then(function (data) {
      if (data.error) { error.textContent = data.error; return; }
      closeForm();
      insert(data.text);
    });
  }

  // Also used by the new-chat page: a preset that names a prompt starts with it.
  function choose(promptId) {
    closeMenu();
    closeForm();
    fetch("/prompts/" + promptId + "/use/", { credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var form = new DOMParser().parseFromString(html, "text/html").getElementById("prompt-variables");
        if (!form) return;
        form = document.importNode(form, true);
        var el = box();
        el.form.parentNode.insertBefore(form, el.form);
        form.addEventListener("submit", function (event) { event.preventDefault(); submitVariables(form); });
        form.querySelector("[data-prompt-cancel]").addEventListener("click", function () { closeForm(); box().focus(); });
        if (form.dataset.variableCount === "0") { submitVariables(form); return; }
        form.querySelector("input, select").focus();
      });
  }
  window.switchboardPrompts = { choose: choose };

  document.addEventListener("input", function (event) {
    if (event.target === box()) refreshMenu();
  });
  document.addEventListener("focusout", function (event) {
    if (event.target === box()) closeMenu();
  });

  // Capture phase: before app.js's Enter-to-send and Escape-to-stop.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && event.target.closest && event.target.closest("#prompt-variables")) {
      event.preventDefault(); event.stopPropagation(); closeForm(); box().focus(); return;
    }
    if (!menu || event.target !== box()) return;
    var keys = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in keys) { highlight(active + keys[event.key]); }
    else if (event.key === "Enter" && !event.isComposing) { if (active >= 0) choose(items[active].id); else closeMenu(); }
    else if (event.key === "Escape") { closeMenu(); }
    else return;
    event.preventDefault();
    event.stopPropagation();
  }, true);

  // A preset that names a prompt: choosing it on the new-chat page opens that prompt.
  document.addEventListener("change", function (event) {
    if (event.target.id !== "preset") return;
    var option = event.target.selectedOptions[0];
    if (option && option.dataset.startPrompt && !box().value.trim()) choose(option.dataset.startPrompt);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var preset = document.getElementById("preset");
    var option = preset && preset.selectedOptions[0];
    if (option && option.dataset.startPrompt && box() && !box().value.trim()) choose(option.dataset.startPrompt);
  });
})();
