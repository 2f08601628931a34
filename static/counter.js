// Character counters. Each element with data-counter-for="<field id>" and
// data-limit="<n>" says how much of the limit that field uses, as its user
// types. The page renders the limit itself, so without JavaScript it is still
// said; the field's maxlength stops typing at the limit, and the server
// refuses anything longer whatever the browser did.
(function () {
  "use strict";

  function update(counter, field) {
    var limit = parseInt(counter.getAttribute("data-limit"), 10);
    var used = field.value.length;
    counter.textContent =
      used.toLocaleString("en") + " of " + limit.toLocaleString("en") + " characters";
    counter.classList.toggle("near", used >= limit * 0.9);
  }

  function bind(root) {
    root.querySelectorAll("[data-counter-for]").forEach(function (counter) {
      var field = document.getElementById(counter.getAttribute("data-counter-for"));
      if (!field || field.getAttribute("data-counted") === counter.id) {
        return;
      }
      field.setAttribute("data-counted", counter.id);
      var described = (field.getAttribute("aria-describedby") || "").split(" ");
      if (described.indexOf(counter.id) < 0) {
        described.push(counter.id);
        field.setAttribute("aria-describedby", described.join(" ").trim());
      }
      field.addEventListener("input", function () {
        update(counter, field);
      });
      update(counter, field);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bind(document);
  });
  // Regions htmx swaps in (the wizard's review step) bring their own fields.
  document.addEventListener("htmx:load", function (event) {
    if (event.target && event.target.querySelectorAll) {
      bind(event.target.parentNode || event.target);
    }
  });
})();
