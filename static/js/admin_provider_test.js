// "Test connection" on the admin's add-provider form: posts the URL and key typed so far to
// the test endpoint (nothing is stored) and shows its answer next to the button.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded by the change form) translates; without it, English.
  var gettext = window.gettext || function (text) { return text; };
  function run(button) {
    var box = button.closest(".test-unsaved");
    var form = button.closest("form");
    var result = box.querySelector("#test-unsaved-result");
    var data = new FormData();
    ["name", "base_url", "api_key"].forEach(function (name) {
      var field = form.elements.namedItem(name);
      data.append(name, field ? field.value : "");
    });
    data.append("csrfmiddlewaretoken", form.elements.namedItem("csrfmiddlewaretoken").value);
    result.textContent = gettext("Testing…");
    button.disabled = true;
    fetch(box.dataset.testUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) {
        result.textContent = answer.message;
        result.className = answer.ok ? "test-ok" : "test-failed errornote";
      })
      .catch(function (error) {
        result.textContent = gettext("Could not test:") + " " + error.message;
        result.className = "test-failed errornote";
      })
      .finally(function () {
        button.disabled = false;
      });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("#test-unsaved-provider");
    if (button) run(button);
  });
})();
