// Attaching files to a message (templates/chat/attachments.html, chat/views/attachments.py):
// the Attach button, drag and drop onto the composer, pasting an image. Each file uploads at
// once (XMLHttpRequest, for its progress) and becomes a chip holding its id in a hidden input,
// so the message sent (websocket or form) carries the ids. Send waits for running uploads.
(function () {
  "use strict";

  var _ = window.gettext || function (s) { return s; };
  var pending = 0;        // uploads still running
  var sendWhenDone = null; // the form whose send waits for them
  var held = null;         // chips of a message just sent, until the server says it was taken

  function picker() { return document.querySelector(".attach"); }
  function chips() { return document.getElementById("attachment-chips"); }
  function composer() {
    var root = picker();
    return root ? root.closest("form") : null;
  }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (error) { return ""; }
  }

  function fromHtml(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  // A message may be only files: the new-chat box is then not required.
  function updateRequired() {
    var form = composer();
    var box = form && form.querySelector("textarea[name=message]");
    if (!box || form.id !== "new-chat-form") return;
    box.required = !form.querySelector(".attachment-chip input[name=attachments]");
  }

  function pendingChip(name) {
    var chip = document.createElement("li");
    chip.className = "attachment-chip uploading";
    var label = document.createElement("span");
    label.className = "attachment-name";
    label.textContent = name;
    var progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", interpolate(_("Uploading %s"), [name]));
    chip.append(label, progress);
    return chip;
  }

  function interpolate(format, values) {
    if (window.interpolate) return window.interpolate(format, values);
    var i = 0;
    return format.replace(/%s/g, function () { return values[i++]; });
  }

  function finished() {
    pending -= 1;
    updateRequired();
    if (pending === 0 && sendWhenDone) {
      var form = sendWhenDone;
      sendWhenDone = null;
      form.requestSubmit();
    }
  }

  function upload(file) {
    var root = picker();
    var list = chips();
    if (!root || !list) return;
    var name = file.name || "pasted-image.png";
    var chip = pendingChip(name);
    list.appendChild(chip);
    var data = new FormData();
    data.append("file", file, name);
    data.append("thread", root.dataset.thread || "");
    var request = new XMLHttpRequest();
    request.open("POST", root.dataset.uploadUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("X-File-Name", encodeURIComponent(name).slice(0, 200));
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        chip.querySelector("progress").value = Math.round(100 * event.loaded / event.total);
      }
    });
    request.addEventListener("load", function () {
      var answer = request.status === 200 ? fromHtml(request.responseText) : null;
      chip.replaceWith(answer || refusedChip(name, _("The upload failed. Try again.")));
      finished();
    });
    request.addEventListener("error", function () {
      chip.replaceWith(refusedChip(name, _("The upload failed. Check the connection and try again.")));
      finished();
    });
    pending += 1;
    request.send(data);
  }

  function refusedChip(name, reason) {
    var chip = document.createElement("li");
    chip.className = "attachment-chip refused";
    chip.setAttribute("role", "alert");
    var label = document.createElement("span");
    label.className = "attachment-name";
    label.textContent = name;
    var why = document.createElement("span");
    why.className = "attachment-reason";
    why.textContent = reason;
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "icon attachment-dismiss";
    dismiss.setAttribute("aria-label", _("Dismiss"));
    dismiss.textContent = "×";
    chip.append(label, why, dismiss);
    return chip;
  }

  function uploadAll(files) {
    Array.prototype.forEach.call(files, upload);
  }

  document.addEventListener("change", function (event) {
    if (!event.target.matches || !event.target.matches("#attach-input")) return;
    uploadAll(event.target.files);
    event.target.value = "";  // the same file can be chosen again
  });

  // Drag and drop onto the composer. A file dropped elsewhere on the page is ignored (the
  // browser would otherwise leave the page for the file, losing what was typed).
  function carriesFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
  }
  document.addEventListener("dragover", function (event) {
    var form = composer();
    if (!form || !carriesFiles(event)) return;
    event.preventDefault();
    if (form.contains(event.target)) form.classList.add("dropping");
  });
  document.addEventListener("dragleave", function (event) {
    var form = composer();
    if (form && !form.contains(event.relatedTarget)) form.classList.remove("dropping");
  });
  document.addEventListener("drop", function (event) {
    var form = composer();
    if (!form || !carriesFiles(event)) return;
    event.preventDefault();
    form.classList.remove("dropping");
    if (form.contains(event.target)) uploadAll(event.dataTransfer.files);
  });

  // Pasting an image (a screenshot) into the message box.
  document.addEventListener("paste", function (event) {
    var form = composer();
    if (!form || !form.contains(event.target) || !event.clipboardData) return;
    var files = [];
    Array.prototype.forEach.call(event.clipboardData.items || [], function (item) {
      if (item.kind === "file") {
        var file = item.getAsFile();
        if (file) files.push(file);
      }
    });
    if (!files.length) return;
    event.preventDefault();
    uploadAll(files);
  });

  // Remove a chip before sending (its file is deleted on the server), or dismiss a refusal.
  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest(".attachment-dismiss");
    if (dismiss) { dismiss.closest(".attachment-chip").remove(); return; }
    var button = event.target.closest(".attachment-remove");
    if (!button) return;
    var chip = button.closest(".attachment-chip");
    var request = new XMLHttpRequest();
    request.open("POST", button.dataset.removeUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.send();
    chip.remove();
    updateRequired();
    var input = document.getElementById("attach-input");
    if (input) input.focus();
  });

  // Send waits until every upload has finished, then goes by itself.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (pending === 0 || !form.querySelector || !form.querySelector(".attach")) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    sendWhenDone = form;
  }, true);

  // A message sent over the socket takes its chips along; they come back if the server
  // refuses the message (its answer fills #composer-error), so nothing attached is lost.
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    var list = chips();
    if (!form || form.id !== "composer" || !list) return;
    held = Array.prototype.slice.call(list.querySelectorAll(".attachment-chip:not(.refused)"));
    held.forEach(function (chip) { chip.remove(); });
  });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var message = event.detail.message;
    if (!held || typeof message !== "string" || message.indexOf("composer-error") < 0) return;
    var error = document.getElementById("composer-error");
    var list = chips();
    if (error && error.textContent.trim() && list) {
      held.forEach(function (chip) { list.appendChild(chip); });
    }
    held = null;
  });
})();
