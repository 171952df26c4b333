// The import page's progress bar: the upload's progress, then "processing" until the answer.
(function () {
  "use strict";
  function bar() { return document.getElementById("import-progress"); }
  document.addEventListener("htmx:xhr:progress", function (event) {
    var progress = bar();
    if (!progress || event.target.id !== "import-form" || !event.detail.lengthComputable) return;
    progress.hidden = false;
    progress.value = Math.round(100 * event.detail.loaded / event.detail.total);
    if (progress.value >= 100) progress.removeAttribute("value");  // uploaded: now importing
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var progress = bar();
    if (progress && event.target.id === "import-form") { progress.hidden = true; progress.value = 0; }
  });
})();
