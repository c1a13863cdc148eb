/* The report page's figures (reports.js): the headline tiles, the charts drawn as inline SVG (no
 * library, nothing from another origin: a line per day, horizontal bars, the weekday-by-hour heat
 * map), the categories under 80% satisfaction marked, and the table of the bot's misses. Each
 * tile, point, bar and cell opens the tickets behind it (report_drill.js). Drawn into the
 * figures the page built, by id; nothing here asks the API.
 *
 * Same rule as console.js: category names and the customers' questions go on the page with
 * textContent (SVG <text> and <title> included), never parsed as markup.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, t = C.t, el = C.el, words = C.words;
  var clickable = window.GW_REPORT_DRILL.clickable;
  var SVG = "http://www.w3.org/2000/svg";
  var TARGET = 0.8;  // the operating procedure reviews any category under 80% satisfied

  function $(id) { return document.getElementById(id); }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function short(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }
  function tip(node, text) { node.appendChild(svg("title", {}, text)); return node; }

  /* ---------- formatting ---------- */
  function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }
  function span(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 3600) return Math.round(seconds / 60) + t("minutes");
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + t("hours");
    return (seconds / 86400).toFixed(1) + t("days");
  }

  /* ---------- drawing ---------- */
  function plot(id) { var node = $(id).querySelector(".plot"); C.clear(node); return node; }
  function empty(node) { node.appendChild(words("p", "no_data", "muted")); }

  function kpi(key, value, drill) {
    var tile = el("button", "kpi");
    tile.type = "button";
    tile.setAttribute("data-kpi", key);
    tile.appendChild(words("span", "kpi." + key, "kpi-label"));
    tile.appendChild(el("strong", "kpi-value", value));
    return clickable(tile, drill, t("kpi." + key));
  }
  function renderKpis(s) {
    var box = $("report-kpis");
    C.clear(box);
    [
      ["received", String(s.received), { figure: "received" }],
      ["resolved", String(s.resolved), { figure: "resolved" }],
      ["reopened", String(s.reopened), { figure: "reopened" }],
      ["escalated", String(s.escalated), { figure: "escalated" }],
      ["deflection", pct(s.deflection_rate), { figure: "resolved_by_bot" }],
      ["first_response", span(s.first_response.median_seconds) + " / " + span(s.first_response.p90_seconds), { figure: "responded" }],
      ["resolution", span(s.resolution.median_seconds) + " / " + span(s.resolution.p90_seconds), { figure: "resolved" }],
      ["sla", pct(s.first_response_sla), { figure: "first_response_late" }],
      ["resolution_sla", pct(s.resolution_sla), { figure: "resolution_late" }],
      ["updates_late", String(s.updates_late), { figure: "update_late" }],
      ["satisfaction", s.satisfaction_mean === null ? "—" : s.satisfaction_mean.toFixed(2), { figure: "rated" }],
      ["response_rate", pct(s.survey_response_rate), { figure: "rated" }],
      ["low_share", pct(s.low_score_share), { figure: "rated", low_score: "true" }]
    ].forEach(function (k) { box.appendChild(kpi(k[0], k[1], k[2])); });
  }

  /* A line per series over the period's days; every point can be drilled into. */
  function lineChart(node, days, series) {
    var W = 1100, H = 260, L = 40, R = 12, T = 12, B = 28;
    var max = 1;
    days.forEach(function (d) { series.forEach(function (s) { max = Math.max(max, d[s]); }); });
    var x = function (i) { return L + (days.length > 1 ? i * (W - L - R) / (days.length - 1) : (W - L - R) / 2); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "line-chart", role: "img" });
    [0, Math.round(max / 2), max].forEach(function (v) {
      chart.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid-line" }));
      chart.appendChild(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v));
    });
    var step = Math.max(1, Math.ceil(days.length / 10));
    days.forEach(function (d, i) {
      if (i % step === 0) chart.appendChild(svg("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": "middle" }, d.day.slice(5)));
    });
    series.forEach(function (s) {
      var points = days.map(function (d, i) { return x(i).toFixed(1) + "," + y(d[s]).toFixed(1); }).join(" ");
      chart.appendChild(svg("polyline", { points: points, class: "line line-" + s, "data-series": s }));
    });
    // Later series first and larger: where two points coincide the first series' dot sits
    // inside the other's ring, and both can still be clicked.
    series.slice().reverse().forEach(function (s, n) {
      days.forEach(function (d, i) {
        var dot = svg("circle", { cx: x(i), cy: y(d[s]), r: n === series.length - 1 ? 3.5 : 6.5, class: "point point-" + s, "data-series": s, "data-day": d.day, "data-count": d[s] });
        var label = t("series." + s) + " " + d.day + ": " + d[s];
        tip(dot, label);
        chart.appendChild(clickable(dot, { figure: s === "resolved" ? "resolved" : "received", day: d.day }, label));
      });
    });
    node.appendChild(chart);
    var legend = el("div", "legend");
    series.forEach(function (s) { legend.appendChild(el("span", "key key-" + s, t("series." + s))); });
    node.appendChild(legend);
  }

  /* Horizontal bars: one row per item {key, label, value, shown, drill, cls}. */
  function barChart(node, items, opts) {
    opts = opts || {};
    if (!items.length) { empty(node); return; }
    var W = 420, row = 26, L = 130, R = opts.room || 56, H = items.length * row + 8;
    var max = opts.max || Math.max.apply(null, items.map(function (i) { return i.value; }).concat([1]));
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "bar-chart", role: "img" });
    items.forEach(function (item, n) {
      var top = 4 + n * row, width = Math.max(1, (W - L - R) * item.value / max);
      var label = item.label + ": " + item.shown;
      chart.appendChild(svg("text", { x: L - 6, y: top + 16, class: "label", "text-anchor": "end" }, short(item.label, 12)));
      var bar = svg("rect", { x: L, y: top + 3, width: width, height: row - 8, rx: 3, class: "bar" + (item.cls ? " " + item.cls : ""), "data-key": item.key === null ? "" : item.key, "data-value": item.value });
      tip(bar, label);
      chart.appendChild(item.drill ? clickable(bar, item.drill, label) : bar);
      chart.appendChild(svg("text", { x: L + width + 4, y: top + 16, class: "value" }, item.shown));
    });
    if (opts.target) {
      var tx = L + (W - L - R) * opts.target / max;
      chart.appendChild(svg("line", { x1: tx, x2: tx, y1: 0, y2: H, class: "target" }));
    }
    node.appendChild(chart);
  }

  /* Time in each status: no tickets to list behind a mean, so these bars do not drill. */
  function renderStatusTimes(times) {
    var node = plot("chart-status-time");
    if (!times) return;
    barChart(node, times.map(function (x) {
      return { key: x.status, label: t("status." + x.status), value: x.mean_seconds,
        shown: span(x.mean_seconds) + " · " + x.left, drill: null };
    }), { room: 100 });
  }

  /* The bot's misses: customers' own words, as text. */
  function missTable(node, misses) {
    if (!misses.length) { empty(node); return; }
    var table = el("table", "grid misses");
    var head = el("tr");
    ["col_kind", "col_question", "col_times"].forEach(function (k) { head.appendChild(words("th", k)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    misses.forEach(function (m) {
      var row = el("tr");
      row.setAttribute("data-kind", m.kind);
      row.appendChild(el("td", null, t("miss." + m.kind)));
      row.appendChild(el("td", "question", m.question));
      row.appendChild(el("td", null, String(m.count)));
      body.appendChild(row);
    });
    node.appendChild(table);
  }

  /* Weekday rows by hour columns, darker where more tickets came in. */
  function heatmap(node, rows) {
    var W = 1100, L = 36, T = 18, cell = (W - L - 4) / 24, ch = 26, H = T + 7 * ch + 4;
    var max = 1;
    rows.forEach(function (r) { r.forEach(function (v) { max = Math.max(max, v); }); });
    var names = t("weekdays").split(",");
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "heatmap", role: "img" });
    for (var h = 0; h < 24; h += 3) {
      chart.appendChild(svg("text", { x: L + h * cell + cell / 2, y: 12, class: "axis", "text-anchor": "middle" }, h));
    }
    rows.forEach(function (r, wd) {
      chart.appendChild(svg("text", { x: L - 6, y: T + wd * ch + 16, class: "axis", "text-anchor": "end" }, names[wd]));
      r.forEach(function (v, hour) {
        var rect = svg("rect", {
          x: L + hour * cell + 1, y: T + wd * ch + 1, width: cell - 2, height: ch - 2, rx: 2,
          class: "cell", "fill-opacity": (0.06 + 0.94 * v / max).toFixed(3),
          "data-weekday": wd, "data-hour": hour, "data-count": v
        });
        var label = names[wd] + " " + hour + t("hour_suffix") + ": " + v;
        tip(rect, label);
        chart.appendChild(clickable(rect, { weekday: String(wd), hour: String(hour) }, label));
      });
    });
    node.appendChild(chart);
  }

  /* Every figure of a report: ``s`` its summary, ``c`` its chart data, ``times`` the time in each
     status (null until it comes), ``categoryName(id)`` the page's name for a category. */
  function render(s, c, times, categoryName) {
    renderKpis(s);
    lineChart(plot("chart-trend"), c.days, ["received", "resolved"]);
    barChart(plot("chart-satisfaction"), [5, 4, 3, 2, 1].map(function (score) {
      var n = s.satisfaction_counts[String(score)] || 0;
      return { key: String(score), label: score + t("stars"), value: n, shown: String(n),
        cls: score <= 2 ? "low" : "", drill: { figure: "rated", score: String(score) } };
    }).filter(function (i) { return i.value > 0; }));
    barChart(plot("chart-category-satisfaction"), s.categories.map(function (c) {
      var below = c.below_target;
      return { key: c.category_id === null ? null : String(c.category_id), label: categoryName(c.category_id),
        value: c.satisfied_share, shown: pct(c.satisfied_share) + " · " + c.answers + t("answers"),
        cls: below ? "low below-target" : "",
        drill: c.category_id === null ? { figure: "rated", uncategorised: "true" } : { figure: "rated", category: String(c.category_id) } };
    }), { max: 1, target: TARGET, room: 120 });
    barChart(plot("chart-category"), c.by_category.map(function (i) {
      return { key: i.key, label: categoryName(i.key), value: i.count, shown: String(i.count),
        drill: i.key === null ? { uncategorised: "true" } : { category: i.key } };
    }));
    [["chart-need", c.by_need_type, "need_type", "need."], ["chart-channel", c.by_channel, "channel", "channel."],
      ["chart-priority", c.by_priority, "priority", "priority."]].forEach(function (spec) {
      barChart(plot(spec[0]), spec[1].map(function (i) {
        var drill = {}; drill[spec[2]] = i.key;
        return { key: i.key, label: t(spec[3] + i.key), value: i.count, shown: String(i.count), drill: drill };
      }));
    });
    heatmap(plot("chart-heatmap"), c.heatmap);
    renderStatusTimes(times);
    missTable(plot("chart-misses"), s.kb_misses);
    // Rows of the category satisfaction chart under target, marked for the page and for tests.
    $("chart-category-satisfaction").setAttribute("data-below-target",
      String(s.categories.filter(function (x) { return x.below_target; }).length));
  }

  window.GW_REPORT_CHARTS = { draw: render, statusTimes: renderStatusTimes };
})();
