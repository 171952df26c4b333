// The sidebar's enhancements (everything also works without them, through each chat's menu):
// drag a chat onto a folder (or back onto the chat list) to move it, and follow a chat title
// that a model wrote while the page was open.
(function () {
  "use strict";

  var dragged = null;  // the move URL of the chat being dragged

  function dropTarget(element) {
    if (!element || !element.closest) return null;
    return element.closest("#sidebar-lists .folder[data-folder], #sidebar-lists #thread-list[data-folder]");
  }

  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest("#sidebar-lists .chat-item[data-move-url]");
    if (!item) return;
    dragged = item.dataset.moveUrl;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.querySelector("a").href);
  });
  document.addEventListener("dragend", function () {
    dragged = null;
    document.querySelectorAll(".drop-here").forEach(function (el) { el.classList.remove("drop-here"); });
  });
  document.addEventListener("dragover", function (event) {
    var target = dragged && dropTarget(event.target);
    if (!target) return;
    event.preventDefault();  // allows the drop
    target.classList.add("drop-here");
  });
  document.addEventListener("dragleave", function (event) {
    var target = dropTarget(event.target);
    if (target && !target.contains(event.relatedTarget)) target.classList.remove("drop-here");
  });
  document.addEventListener("drop", function (event) {
    var target = dragged && dropTarget(event.target);
    if (!target || !window.htmx) return;
    event.preventDefault();
    var url = dragged;
    dragged = null;
    window.htmx.ajax("POST", url, {
      target: "#sidebar-lists",
      swap: "outerHTML",
      values: { folder: target.dataset.folder },
    });
  });

  // A title written by a model arrives over the socket, carrying the page's new title.
  document.addEventListener("htmx:wsAfterMessage", function () {
    var title = document.querySelector("#thread-title[data-page-title], #thread-title-text[data-page-title]");
    if (title) document.title = title.dataset.pageTitle;
  });
})();
