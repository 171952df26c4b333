// The usage dashboard's charts, drawn by the vendored Chart.js from the page's JSON data.
// The tables under the charts carry the same figures, for screen readers and without JS.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded before this file) translates; without it, English.
  var gettext = window.gettext || function (text) { return text; };

  function draw() {
    var source = document.getElementById("usage-chart-data");
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var style = getComputedStyle(document.documentElement);
    var text = style.getPropertyValue("--text").trim() || "#1d1f23";
    var grid = style.getPropertyValue("--border").trim() || "#dfe1e5";
    var accent = style.getPropertyValue("--accent").trim() || "#2557d6";
    var Chart = window.Chart;
    Chart.defaults.color = text;
    Chart.defaults.borderColor = grid;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;

    new Chart(document.getElementById("chart-over-time"), {
      data: {
        labels: data.periods,
        datasets: [
          { type: "bar", label: gettext("Input tokens"), data: data.input, stack: "tokens",
            backgroundColor: accent, yAxisID: "tokens" },
          { type: "bar", label: gettext("Output tokens"), data: data.output, stack: "tokens",
            backgroundColor: "#8fb0ff", yAxisID: "tokens" },
          { type: "line", label: gettext("Estimated cost"), data: data.cost, borderColor: "#e8833a",
            backgroundColor: "#e8833a", yAxisID: "cost", pointRadius: 2, tension: 0.2 }
        ]
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true },
          tokens: { type: "linear", position: "left", stacked: true, beginAtZero: true,
                    title: { display: true, text: gettext("tokens") } },
          cost: { type: "linear", position: "right", beginAtZero: true,
                  grid: { drawOnChartArea: false }, title: { display: true, text: gettext("cost") } }
        }
      }
    });

    [["chart-by-user", data.users], ["chart-by-model", data.models]].forEach(function (pair) {
      new Chart(document.getElementById(pair[0]), {
        type: "bar",
        data: { labels: pair[1].labels,
                datasets: [{ label: gettext("Tokens"), data: pair[1].tokens, backgroundColor: accent }] },
        options: { indexAxis: "y", plugins: { legend: { display: false } },
                   scales: { x: { beginAtZero: true } } }
      });
    });
    document.documentElement.dataset.chartsReady = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
