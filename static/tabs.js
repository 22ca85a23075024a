// Tabs addressed by hash routes (#/general, #/plans). Without this script
// every panel shows, one under another, and the links jump to them.
(function () {
  "use strict";
  var tabs = Array.prototype.slice.call(document.querySelectorAll('[role="tab"]'));
  if (!tabs.length) return;
  document.documentElement.classList.add("js");

  function panelOf(tab) { return document.getElementById(tab.getAttribute("aria-controls")); }

  function show(route, moveFocus) {
    var active = tabs.filter(function (t) { return t.getAttribute("href") === route; })[0] || tabs[0];
    tabs.forEach(function (tab) {
      var selected = tab === active;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      tab.tabIndex = selected ? 0 : -1;
      panelOf(tab).hidden = !selected;
    });
    if (moveFocus) active.focus();
  }

  tabs.forEach(function (tab, i) {
    tab.addEventListener("keydown", function (e) {
      var step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      e.preventDefault();
      var next = tabs[(i + step + tabs.length) % tabs.length];
      history.replaceState(null, "", next.getAttribute("href"));
      show(next.getAttribute("href"), true);
    });
  });

  window.addEventListener("hashchange", function () { show(location.hash, true); window.scrollTo(0, 0); });
  show(location.hash, false);
  // The browser jumps to the #/plans anchor after loading; with tabs that
  // only hides the header.
  window.addEventListener("load", function () { window.scrollTo(0, 0); });
})();
