// Phones and tablets (static/css/layout.css): the sidebar is a drawer behind the ☰ button and
// the header's secondary actions fold behind "⋯". Both open and close by keyboard; Escape
// closes and gives focus back to the button; the drawer keeps focus inside while open.
// Also: the "demo" badge beside the model picker, for a model of the built-in demo gateway.
(function () {
  "use strict";

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), " +
    "select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])";

  function visible(element) {
    return element.offsetParent !== null || element.getClientRects().length > 0;
  }

  // --- the drawer --------------------------------------------------------------------------
  function drawerParts() {
    var app = document.querySelector(".app");
    var sidebar = document.getElementById("sidebar");
    return app && sidebar ? { app: app, sidebar: sidebar } : null;
  }

  function backdrop(app) {
    var existing = app.querySelector(".drawer-backdrop");
    if (existing) return existing;
    var element = document.createElement("div");
    element.className = "drawer-backdrop";
    element.hidden = true;
    element.addEventListener("click", function () { closeDrawer(true); });
    app.appendChild(element);
    return element;
  }

  var drawerOpener = null;  // the ☰ button that opened it: focus goes back there

  function openDrawer(button) {
    var parts = drawerParts();
    if (!parts) return;
    drawerOpener = button;
    parts.app.dataset.drawer = "open";
    backdrop(parts.app).hidden = false;
    document.querySelectorAll(".drawer-button").forEach(function (b) { b.setAttribute("aria-expanded", "true"); });
    var first = Array.prototype.find.call(parts.sidebar.querySelectorAll(FOCUSABLE), visible);
    // The sidebar turns visible with its transition: focus once it can take it.
    requestAnimationFrame(function () { (first || parts.sidebar).focus(); });
  }

  function closeDrawer(returnFocus) {
    var parts = drawerParts();
    if (!parts || parts.app.dataset.drawer !== "open") return;
    delete parts.app.dataset.drawer;
    backdrop(parts.app).hidden = true;
    document.querySelectorAll(".drawer-button").forEach(function (b) { b.setAttribute("aria-expanded", "false"); });
    var opener = drawerOpener && document.contains(drawerOpener) ? drawerOpener : document.querySelector(".drawer-button");
    drawerOpener = null;
    if (returnFocus && opener) opener.focus();
  }

  function trapFocus(event) {
    var parts = drawerParts();
    if (!parts || parts.app.dataset.drawer !== "open") return;
    var items = Array.prototype.filter.call(parts.sidebar.querySelectorAll(FOCUSABLE), visible);
    if (!items.length) return;
    var first = items[0], last = items[items.length - 1];
    var inside = parts.sidebar.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  // --- the "⋯" menu ------------------------------------------------------------------------
  function moreParts() {
    var button = document.querySelector(".more-button");
    var menu = document.getElementById("header-more");
    return button && menu ? { button: button, menu: menu } : null;
  }

  function openMore(parts) {
    parts.menu.dataset.open = "";
    parts.button.setAttribute("aria-expanded", "true");
    var first = Array.prototype.find.call(parts.menu.querySelectorAll(FOCUSABLE), visible);
    if (first) first.focus();
  }

  function closeMore(returnFocus) {
    var parts = moreParts();
    if (!parts || !("open" in parts.menu.dataset)) return;
    delete parts.menu.dataset.open;
    parts.button.setAttribute("aria-expanded", "false");
    if (returnFocus) parts.button.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var drawerButton = target.closest(".drawer-button");
    if (drawerButton) {
      var parts = drawerParts();
      if (parts && parts.app.dataset.drawer === "open") closeDrawer(true); else openDrawer(drawerButton);
      return;
    }
    var more = moreParts();
    if (!more) return;
    if (target.closest(".more-button")) {
      if ("open" in more.menu.dataset) closeMore(true); else openMore(more);
    } else if (target.closest("#header-more button, #header-more a")) {
      closeMore(false);  // an action was chosen (Settings opens its panel, Export downloads…)
    } else if (!target.closest("#header-more")) {
      closeMore(false);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var more = moreParts();
      if (more && "open" in more.menu.dataset) {
        closeMore(true);
        event.stopPropagation();
        return;
      }
      var parts = drawerParts();
      if (parts && parts.app.dataset.drawer === "open") {
        closeDrawer(true);
        event.stopPropagation();
      }
    } else if (event.key === "Tab") {
      trapFocus(event);
    }
  }, true);

  // Following a chat link in the drawer loads a page; a wide window has no drawer at all.
  var wide = window.matchMedia("(min-width: 901px)");
  (wide.addEventListener ? wide.addEventListener.bind(wide, "change") : wide.addListener.bind(wide))(function () {
    if (wide.matches) {
      closeDrawer(false);
      closeMore(false);
    }
  });

  // --- the demo badge ----------------------------------------------------------------------
  function showDemoBadge() {
    var select = document.getElementById("model");
    var badge = document.querySelector("#model-picker .demo-badge");
    if (!select || !badge) return;
    var option = select.selectedOptions[0];
    badge.hidden = !(option && option.hasAttribute("data-demo"));
  }

  document.addEventListener("change", function (event) {
    if (event.target instanceof Element && event.target.id === "model") showDemoBadge();
  });
  document.addEventListener("htmx:afterSettle", showDemoBadge);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showDemoBadge);
  else showDemoBadge();
})();
