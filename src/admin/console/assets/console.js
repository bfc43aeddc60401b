// Progressive enhancement only: every page works without this script.
// On the upstream form, show the fields of the chosen transport.
(function () {
  "use strict";
  var select = document.getElementById("transport");
  if (!select) {
    return;
  }
  function show() {
    var http = select.value !== "stdio";
    document.querySelectorAll(".transport-http").forEach(function (el) { el.hidden = !http; });
    document.querySelectorAll(".transport-stdio").forEach(function (el) { el.hidden = http; });
  }
  select.addEventListener("change", show);
  show();
})();
