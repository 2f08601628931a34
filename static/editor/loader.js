// Loads the policy editor (a larger script) only on pages with a policy
// textarea, including pages htmx swaps in. The bundle is served by iamportal
// itself, so the Content-Security-Policy ('self' only) allows it.
(function () {
  var current = document.currentScript;
  var bundle = current && current.dataset.bundle;
  var requested = false;
  function load() {
    if (requested || !bundle || !document.querySelector("textarea[data-policy-editor]")) return;
    requested = true;
    var script = document.createElement("script");
    script.src = bundle;
    script.defer = true;
    document.head.appendChild(script);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
  document.addEventListener("htmx:load", load);
})();
