// moat console: shows the fields of the chosen rule template and keeps a
// port's log events live. Everything works without it too.
"use strict";
(function () {
  function words(el, attr) { return (el.getAttribute(attr) || "").split(/\s+/); }

  function ruleForm(form) {
    var rule = form.querySelector("#rule");
    var open = form.querySelector("#port_or_range");
    var remote = form.querySelector("#remote");
    function update() {
      var opt = rule.options[rule.selectedIndex];
      var kind = opt ? opt.getAttribute("data-kind") : "custom";
      form.querySelectorAll("[data-show]").forEach(function (el) {
        el.hidden = words(el, "data-show").indexOf(kind) < 0;
      });
      form.querySelectorAll("[data-open]").forEach(function (el) {
        el.hidden = words(el, "data-open").indexOf(open.value) < 0;
      });
      form.querySelectorAll("[data-remote]").forEach(function (el) {
        el.hidden = words(el, "data-remote").indexOf(remote.value) < 0;
      });
      // Hidden fields are not sent with a value the user cannot see.
      form.querySelectorAll("input, select").forEach(function (el) {
        var box = el.closest("[hidden]");
        el.disabled = box !== null;
      });
    }
    [rule, open, remote].forEach(function (el) { el.addEventListener("change", update); });
    update();
  }

  // live re-reads the page every data-refresh seconds and swaps in the
  // section's new copy (server-rendered and escaped: no HTML is built here).
  function live(section) {
    var secs = parseInt(section.getAttribute("data-refresh"), 10) || 5;
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById(section.id);
        var now = document.getElementById(section.id);
        if (fresh && now) { now.replaceWith(document.importNode(fresh, true)); }
      }).catch(function () { /* the next round tries again */ });
    }, secs * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("add-rule");
    if (form) { ruleForm(form); }
    document.querySelectorAll("[data-refresh]").forEach(live);
  });
})();
