/* Tracker's toolbar: attach its shadow root where the browser does not read declarative
   shadow DOM, and offer "Hide for this session" (a session cookie the server honours). */
(function () {
  "use strict";
  var host = document.getElementById("tracker-toolbar");
  if (!host) {
    return;
  }
  var root = host.shadowRoot;
  if (!root) {
    var template = host.querySelector("template");
    if (!template || !host.attachShadow) {
      return;
    }
    root = host.attachShadow({mode: "open"});
    root.appendChild(template.content);
    template.remove();
  }
  var hide = root.getElementById("hide");
  if (!hide) {
    return;
  }
  hide.hidden = false;
  hide.addEventListener("click", function () {
    document.cookie = "tracker_toolbar=hidden; path=/; SameSite=Lax";
    host.remove();
  });
})();
