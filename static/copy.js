// Copy buttons (templates/partials/copy_button.html): a button with
// data-copy="<id>" copies the text of the element with that id. The buttons
// are hidden in the page and shown only here, when the browser offers the
// Clipboard API (JavaScript on, HTTPS or loopback); otherwise the text stays
// selectable as it is. Loaded as a file: the Content-Security-Policy allows no
// inline script.
(function () {
  "use strict";
  if (!window.isSecureContext || !navigator.clipboard) {
    return;
  }

  var status = null;

  function reveal(root) {
    var buttons = root.querySelectorAll ? root.querySelectorAll("button.copy-button[hidden]") : [];
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
    }
  }

  function announce(message) {
    if (status === null) {
      status = document.createElement("div");
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      document.body.appendChild(status);
    }
    status.textContent = message;
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function flash(button, text) {
    button.textContent = text;
    window.clearTimeout(button.copyTimer);
    button.copyTimer = window.setTimeout(function () {
      button.textContent = "Copy";
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy-button") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var what = (button.getAttribute("aria-label") || "Copy").replace(/^Copy\s*/, "");
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () {
        flash(button, "Copied");
        announce("Copied " + what + ".");
      },
      function () {
        // Refused (no permission): select it, so Ctrl+C or Cmd+C copies it.
        selectText(source);
        flash(button, "Selected");
        announce("Could not copy " + what + ": it is selected, copy it with the keyboard.");
      }
    );
  });

  document.addEventListener("DOMContentLoaded", function () {
    reveal(document);
  });
  // Fragments htmx swaps in (the CLI commands on My roles, new credentials).
  document.addEventListener("htmx:load", function (event) {
    reveal(event.target);
  });
})();
