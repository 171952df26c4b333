// "Compare models": with models ticked in the composer's picker, the message goes to each of
// them at once (the "compare" action) instead of the thread's model.
(function () {
  "use strict";
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var form = event.detail.elt || event.target;
    if (!form || form.id !== "composer") return;
    var ticked = form.querySelectorAll("input[name=compare_models]:checked");
    if (ticked.length) event.detail.parameters.action = "compare";
  });
  // After a comparison is sent the picker closes (the form's reset unticks its boxes).
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    var picker = form && form.id === "composer" && form.querySelector(".compare-picker");
    if (picker) picker.open = false;
  });
})();
