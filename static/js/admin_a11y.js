// Django's admin: the "many to many" filter widget (SelectFilter2.js) labels an icon <span> with
// aria-label, which a span without a role may not carry (axe: aria-prohibited-attr). Give each
// such icon role="img", as the widget builds them (on page load, after this script runs).
(function () {
  "use strict";
  function fix(root) {
    root.querySelectorAll("span.help-tooltip[aria-label]:not([role])").forEach(function (icon) {
      icon.setAttribute("role", "img");
    });
  }
  new MutationObserver(function () { fix(document); })
    .observe(document.documentElement, { childList: true, subtree: true });
})();
