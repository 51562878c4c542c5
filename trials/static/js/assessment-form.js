/*
 * Live total and severity band of an assessment form, updated as items are answered.
 *
 * The scoring rule comes from the page (#scoring-rule, written from analysis.scoring.RULES):
 * which items are summed, the prorating thresholds and the bands. The form works the same
 * without this script; the server shows the total after saving. Words match score_text in
 * trials/assessments/views.py.
 */
(function () {
  "use strict";

  // answers: item number -> integer response, or null/undefined when missing (never 0).
  function score(rule, answers) {
    var values = [];
    rule.scored_items.forEach(function (item) {
      var value = answers[item];
      if (value !== null && value !== undefined) {
        values.push(value);
      }
    });
    var k = values.length;
    var n = rule.n_scored;
    var sum = values.reduce(function (a, b) { return a + b; }, 0);
    var required = rule.required_items.every(function (item) {
      return answers[item] !== null && answers[item] !== undefined;
    });
    var total = null;
    var prorated = false;
    if (k === n) {
      total = sum;
    } else if (k >= rule.min_answered && required) {
      // round half up of (mean of answered items x n), in integers: floor((2sn + k) / 2k)
      total = Math.floor((2 * sum * n + k) / (2 * k));
      prorated = true;
    }
    var severity = null;
    if (total !== null) {
      rule.bands.forEach(function (band) {
        if (band[0] <= total && total <= band[1]) {
          severity = band[2];
        }
      });
    }
    return { total: total, prorated: prorated, items_answered: k, severity: severity };
  }

  function describe(rule, result) {
    var n = rule.n_scored;
    if (result.total === null) {
      var need = rule.min_answered < n ? "at least " + rule.min_answered + " of " + n : "all " + n;
      var required = rule.required_items.map(function (item) { return " and item " + item; }).join("");
      return "Not scorable: " + result.items_answered + " of " + n + " items answered (needs " + need + required + ")";
    }
    var text = "Total " + result.total + " \u00b7 " + result.severity;
    if (result.prorated) {
      text += " \u00b7 prorated from " + result.items_answered + " of " + n + " items";
    }
    return text;
  }

  function answersOf(form, rule) {
    var answers = {};
    for (var item = 1; item <= rule.n_items; item++) {
      var checked = form.querySelector('input[name="item_' + item + '"]:checked');
      var value = checked ? checked.value : "";
      answers[item] = /^[0-9]+$/.test(value) ? parseInt(value, 10) : null;
    }
    return answers;
  }

  function start() {
    var form = document.getElementById("assessment-form");
    var data = document.getElementById("scoring-rule");
    var output = document.getElementById("live-total");
    if (!form || !data || !output) {
      return;
    }
    var rule = JSON.parse(data.textContent);
    var update = function () {
      output.textContent = describe(rule, score(rule, answersOf(form, rule)));
    };
    form.addEventListener("change", update);
    update();
  }

  if (typeof module !== "undefined" && module.exports) {
    module.exports = { score: score, describe: describe };
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
