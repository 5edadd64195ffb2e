// moat console: shows the fields of the chosen rule template. Everything
// works without it too.
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

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("add-rule");
    if (form) { ruleForm(form); }
  });
})();
