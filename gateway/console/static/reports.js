/* The console's report page (supervisors and admins): headline figures, charts drawn as inline
 * SVG (no library, nothing from another origin), the categories under 80% satisfaction marked,
 * and a drill-down from any figure, bar, point or heat-map cell to the tickets behind it.
 *
 * Every count comes from /api/v1/reports/*, which the database computes; the drill-down asks
 * /api/v1/reports/tickets with the same filters, so a list is exactly as long as its figure.
 * Same rule as console.js: names, subjects and category names go on the page with textContent
 * (SVG <text> and <title> included), never parsed as markup.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE;
  var SVG = "http://www.w3.org/2000/svg";
  var RANK = { agent: 1, supervisor: 2, admin: 3 };
  var TARGET = 0.8;  // the operating procedure reviews any category under 80% satisfied
  var FILTERS = [
    ["channel", ["webchat", "email", "telegram"], "channel."],
    ["need_type", ["inquiry", "complaint", "repair", "suggestion"], "need."],
    ["priority", ["normal", "urgent", "critical"], "priority."]
  ];
  Object.assign(window.GW_I18N["zh-CN"], {
    nav_reports: "报表", reports_title: "服务质量报表",
    period: "周期", "period.month": "本月", "period.last_month": "上月",
    "period.week": "最近 7 天", "period.days30": "最近 30 天", "period.custom": "自定义",
    from: "从", to: "到", any: "全部", category: "分类", apply: "查询",
    "filter.channel": "渠道", "filter.need_type": "需求类型", "filter.priority": "优先级",
    export_summary: "导出报表", export_charts: "导出图表数据", export_tickets: "导出工单", uncategorised: "未分类",
    "kpi.received": "受理", "kpi.resolved": "已解决", "kpi.reopened": "重新打开",
    "kpi.escalated": "转人工", "kpi.deflection": "机器人解决率", "kpi.first_response": "首次响应（中位 / P90）",
    "kpi.resolution": "解决时长（中位 / P90）", "kpi.sla": "首次响应达标率",
    "kpi.resolution_sla": "解决达标率", "kpi.updates_late": "超 24 小时未更新进度",
    "chart.status_time": "各状态平均停留时间", "chart.misses": "机器人未答上 / 答案无帮助的常见问题",
    "miss.unanswered": "未答上", "miss.not_helpful": "无帮助", col_kind: "类型", col_question: "问题",
    col_times: "次数", "figure.resolution_late": "解决超时", "figure.update_late": "进度更新超时",
    "kpi.satisfaction": "满意度均分", "kpi.response_rate": "回访回复率", "kpi.low_share": "差评占比（≤2 星）",
    "chart.trend": "每日受理与解决", "chart.satisfaction": "满意度分布",
    "chart.category_satisfaction": "各分类满意率（低于 80% 标红，需做根因分析）",
    "chart.category": "问题分类分布", "chart.need": "需求类型分布", "chart.channel": "渠道分布",
    "chart.priority": "优先级分布", "chart.heatmap": "繁忙时段（星期 × 小时）",
    "series.received": "受理", "series.resolved": "解决", stars: " 星", answers: "份回访",
    satisfied: "满意", below_target: "低于 80%", no_data: "本周期没有数据",
    weekdays: "一,二,三,四,五,六,日", hour_suffix: "时",
    drill_title: "明细：", drill_total: "共 {n} 张工单", prev: "上一页", next: "下一页",
    close: "关闭", col_number: "单号", col_created: "创建时间", col_status: "状态",
    col_priority: "优先级", col_channel: "渠道", col_category: "分类", col_contact: "客户",
    col_subject: "主题", forbidden_reports: "只有主管和管理员可以查看报表",
    "figure.received": "受理", "figure.resolved": "已解决", "figure.resolved_by_bot": "机器人解决",
    "figure.escalated": "转人工", "figure.reopened": "重新打开", "figure.responded": "已首次响应",
    "figure.first_response_late": "首次响应超时", "figure.rated": "已评价",
    "need.inquiry": "咨询", "need.complaint": "投诉", "need.repair": "报修", "need.suggestion": "建议",
    minutes: "分", hours: "小时", days: "天"
  });
  Object.assign(window.GW_I18N.en, {
    nav_reports: "Reports", reports_title: "Service quality",
    period: "Period", "period.month": "This month", "period.last_month": "Last month",
    "period.week": "Last 7 days", "period.days30": "Last 30 days", "period.custom": "Custom",
    from: "From", to: "To", any: "Any", category: "Category", apply: "Show",
    "filter.channel": "Channel", "filter.need_type": "Need type", "filter.priority": "Priority",
    export_summary: "Export report", export_charts: "Export chart data",
    export_tickets: "Export tickets", uncategorised: "Uncategorised",
    "kpi.received": "Received", "kpi.resolved": "Resolved", "kpi.reopened": "Reopened",
    "kpi.escalated": "Escalated", "kpi.deflection": "Resolved by the bot",
    "kpi.first_response": "First response (median / p90)",
    "kpi.resolution": "Resolution (median / p90)", "kpi.sla": "First response on time",
    "kpi.resolution_sla": "Resolved on time", "kpi.updates_late": "No update for 24 h",
    "chart.status_time": "Mean time in each status",
    "chart.misses": "Questions the bot missed or answered unhelpfully",
    "miss.unanswered": "unanswered", "miss.not_helpful": "not helpful", col_kind: "Kind",
    col_question: "Question", col_times: "Times", "figure.resolution_late": "Resolved late",
    "figure.update_late": "Progress update late",
    "kpi.satisfaction": "Mean satisfaction", "kpi.response_rate": "Survey response rate",
    "kpi.low_share": "Low scores (≤ 2 stars)",
    "chart.trend": "Received and resolved per day", "chart.satisfaction": "Satisfaction scores",
    "chart.category_satisfaction": "Satisfied share per category (under 80% in red: root-cause review)",
    "chart.category": "By category", "chart.need": "By need type", "chart.channel": "By channel",
    "chart.priority": "By priority", "chart.heatmap": "Busiest hours (weekday × hour)",
    "series.received": "Received", "series.resolved": "Resolved", stars: " stars",
    answers: " answers", satisfied: "satisfied", below_target: "under 80%",
    no_data: "No data in this period", weekdays: "Mon,Tue,Wed,Thu,Fri,Sat,Sun", hour_suffix: "h",
    drill_title: "Tickets: ", drill_total: "{n} tickets", prev: "Previous", next: "Next",
    close: "Close", col_number: "Number", col_created: "Created", col_status: "Status",
    col_priority: "Priority", col_channel: "Channel", col_category: "Category",
    col_contact: "Customer", col_subject: "Subject",
    forbidden_reports: "Only supervisors and admins can see reports",
    "figure.received": "Received", "figure.resolved": "Resolved",
    "figure.resolved_by_bot": "Resolved by the bot", "figure.escalated": "Escalated",
    "figure.reopened": "Reopened", "figure.responded": "First response given",
    "figure.first_response_late": "First response late", "figure.rated": "Rated",
    "need.inquiry": "Inquiry", "need.complaint": "Complaint", "need.repair": "Repair",
    "need.suggestion": "Suggestion", minutes: "min", hours: "h", days: "d"
  });
  var t = C.t, el = C.el;
  var state = { built: false, summary: null, charts: null, statusTimes: null, categories: new Map(), drill: null, page: 1 };

  function $(id) { return document.getElementById(id); }
  function allowed() { var me = C.me(); return !!me && RANK[me.role] >= RANK.supervisor; }
  function words(tag, key, cls) {
    var node = el(tag, cls, t(key));
    node.setAttribute("data-i18n", key);
    return node;
  }
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
  function iso(d) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }
  function categoryName(id) {
    if (id === null || id === undefined) return t("uncategorised");
    var c = state.categories.get(Number(id));
    if (!c) return "#" + id;
    var parent = c.parent_id !== null ? state.categories.get(c.parent_id) : null;
    return parent ? parent.name + " / " + c.name : c.name;
  }

  /* ---------- the page's skeleton (built once, on first visit) ---------- */
  function select(id, options) {
    var node = document.createElement("select");
    node.id = id;
    options.forEach(function (o) {
      var option = el("option", null, t(o[1]));
      option.value = o[0];
      option.setAttribute("data-i18n", o[1]);
      node.appendChild(option);
    });
    return node;
  }
  function labelled(key, control) {
    var label = el("label", "field");
    label.appendChild(words("span", key));
    label.appendChild(control);
    return label;
  }
  function figure(id, key, wide) {
    var node = el("figure", "chart" + (wide ? " wide" : ""));
    node.id = id;
    node.appendChild(words("figcaption", key));
    node.appendChild(el("div", "plot"));
    return node;
  }
  function link(id, key) {
    var a = el("a", "export", t(key));
    a.setAttribute("data-label", key);
    a.id = id;
    a.setAttribute("download", "");
    return a;
  }
  function build() {
    var view = el("section", "reports");
    view.id = "reports-view";
    document.body.insertBefore(view, $("toasts"));
    var head = el("div", "report-head");
    head.appendChild(words("h1", "reports_title"));
    view.appendChild(head);

    var form = el("form", "report-toolbar");
    form.id = "report-form";
    var period = select("report-period", ["month", "last_month", "week", "days30", "custom"].map(
      function (p) { return [p, "period." + p]; }));
    form.appendChild(labelled("period", period));
    ["from", "to"].forEach(function (k) {
      var input = document.createElement("input");
      input.type = "date"; input.id = "report-" + k; input.required = true;
      form.appendChild(labelled(k, input));
    });
    FILTERS.forEach(function (f) {
      var opts = [["", "any"]].concat(f[1].map(function (v) { return [v, f[2] + v]; }));
      form.appendChild(labelled("filter." + f[0], select("report-" + f[0], opts)));
    });
    form.appendChild(labelled("category", select("report-category", [["", "any"]])));
    var go = words("button", "apply");
    go.type = "submit"; go.id = "report-apply";
    form.appendChild(go);
    form.appendChild(link("export-summary-csv", "export_summary"));
    form.appendChild(link("export-summary-xlsx", "export_summary"));
    form.appendChild(link("export-charts-csv", "export_charts"));
    form.appendChild(link("export-charts-xlsx", "export_charts"));
    form.appendChild(link("export-tickets-csv", "export_tickets"));
    form.appendChild(link("export-tickets-xlsx", "export_tickets"));
    view.appendChild(form);
    view.appendChild(el("p", "error report-error")).id = "report-error";

    var kpis = el("div", "kpis");
    kpis.id = "report-kpis";
    view.appendChild(kpis);
    var grid = el("div", "charts");
    grid.appendChild(figure("chart-trend", "chart.trend", true));
    grid.appendChild(figure("chart-satisfaction", "chart.satisfaction"));
    grid.appendChild(figure("chart-category-satisfaction", "chart.category_satisfaction"));
    grid.appendChild(figure("chart-category", "chart.category"));
    grid.appendChild(figure("chart-need", "chart.need"));
    grid.appendChild(figure("chart-channel", "chart.channel"));
    grid.appendChild(figure("chart-priority", "chart.priority"));
    grid.appendChild(figure("chart-status-time", "chart.status_time"));
    grid.appendChild(figure("chart-heatmap", "chart.heatmap", true));
    grid.appendChild(figure("chart-misses", "chart.misses", true));
    view.appendChild(grid);

    var drill = el("section", "drill");
    drill.id = "drill";
    drill.hidden = true;
    var bar = el("div", "drill-head");
    bar.appendChild(el("h2", null)).id = "drill-title";
    bar.appendChild(el("span", "muted")).id = "drill-total";
    bar.appendChild(link("drill-csv", "export_tickets"));
    bar.appendChild(link("drill-xlsx", "export_tickets"));
    var close = words("button", "close", "secondary");
    close.type = "button"; close.id = "drill-close";
    bar.appendChild(close);
    drill.appendChild(bar);
    var table = el("table", "grid");
    var row = el("tr");
    ["col_number", "col_created", "col_status", "col_priority", "col_channel", "col_category",
      "col_contact", "col_subject"].forEach(function (k) { row.appendChild(words("th", k)); });
    table.appendChild(el("thead")).appendChild(row);
    table.appendChild(el("tbody")).id = "drill-rows";
    drill.appendChild(table);
    var pager = el("div", "pager");
    var prev = words("button", "prev", "secondary");
    prev.type = "button"; prev.id = "drill-prev";
    var next = words("button", "next", "secondary");
    next.type = "button"; next.id = "drill-next";
    pager.appendChild(prev);
    pager.appendChild(el("span", "muted")).id = "drill-page";
    pager.appendChild(next);
    drill.appendChild(pager);
    view.appendChild(drill);

    period.addEventListener("change", function () { setPeriod(period.value); });
    ["report-from", "report-to"].forEach(function (id) {
      $(id).addEventListener("input", function () { period.value = "custom"; });
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
    close.addEventListener("click", function () { drill.hidden = true; state.drill = null; });
    prev.addEventListener("click", function () { if (state.page > 1) showDrill(state.drill, state.page - 1); });
    next.addEventListener("click", function () { showDrill(state.drill, state.page + 1); });
    setPeriod("month");
    state.built = true;
  }
  function setPeriod(kind) {
    if (kind === "custom") return;
    var now = new Date(), from, to;
    if (kind === "month") { from = new Date(now.getFullYear(), now.getMonth(), 1); to = new Date(now.getFullYear(), now.getMonth() + 1, 0); }
    if (kind === "last_month") { from = new Date(now.getFullYear(), now.getMonth() - 1, 1); to = new Date(now.getFullYear(), now.getMonth(), 0); }
    if (kind === "week") { to = now; from = new Date(now.getTime() - 6 * 86400000); }
    if (kind === "days30") { to = now; from = new Date(now.getTime() - 29 * 86400000); }
    $("report-from").value = iso(from);
    $("report-to").value = iso(to);
  }

  /* ---------- loading ---------- */
  function filters() {
    var params = new URLSearchParams({ from: $("report-from").value, to: $("report-to").value });
    FILTERS.forEach(function (f) { if ($("report-" + f[0]).value) params.set(f[0], $("report-" + f[0]).value); });
    if ($("report-category").value) params.set("category", $("report-category").value);
    return params;
  }
  function exportLinks(prefix, params, report) {
    ["csv", "xlsx"].forEach(function (format) {
      var p = new URLSearchParams(params);
      p.set("report", report); p.set("format", format);
      var a = $(prefix + format);
      a.href = "/api/v1/reports/export?" + p.toString();
      a.textContent = t(a.getAttribute("data-label")) + " " + format.toUpperCase();
    });
  }
  function loadCategories() {
    return C.api("GET", "/api/v1/categories").then(function (found) {
      state.categories = new Map(found.items.map(function (c) { return [c.id, c]; }));
      var node = $("report-category"), chosen = node.value;
      while (node.options.length > 1) node.remove(1);
      found.items.forEach(function (c) {
        var option = el("option", null, categoryName(c.id));
        option.value = String(c.id);
        node.appendChild(option);
      });
      node.value = chosen;
    }).catch(function () { return null; });
  }
  function load() {
    var params = filters();
    $("report-error").textContent = "";
    document.body.setAttribute("data-report", "loading");
    state.statusTimes = null;
    exportLinks("export-summary-", params, "summary");
    exportLinks("export-charts-", params, "charts");
    exportLinks("export-tickets-", params, "tickets");
    return Promise.all([
      C.api("GET", "/api/v1/reports/summary?" + params.toString()),
      C.api("GET", "/api/v1/reports/charts?" + params.toString())
    ]).then(function (found) {
      state.summary = found[0]; state.charts = found[1];
      render();
      document.body.setAttribute("data-report", "ready");
      // Read from the audit trail, slower than the rest: drawn when it comes.
      C.api("GET", "/api/v1/reports/status-times?" + params.toString()).then(function (times) {
        state.statusTimes = times.items;
        renderStatusTimes();
      }).catch(function () { return null; });
    }).catch(function (err) {
      $("report-error").textContent = err.status === 403 ? t("forbidden_reports") : t("error") + (err.detail || err);
      document.body.setAttribute("data-report", "failed");
    });
  }

  /* ---------- drawing ---------- */
  function clickable(node, drill, label) {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", label);
    node.classList.add("drillable");
    node.addEventListener("click", function () { showDrill(Object.assign({ label: label }, drill), 1); });
    node.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); showDrill(Object.assign({ label: label }, drill), 1); }
    });
    return node;
  }
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
  function renderStatusTimes() {
    var node = plot("chart-status-time");
    if (!state.statusTimes) return;
    barChart(node, state.statusTimes.map(function (x) {
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

  function render() {
    var s = state.summary, c = state.charts;
    if (!s || !c) return;
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
    renderStatusTimes();
    missTable(plot("chart-misses"), s.kb_misses);
    // Rows of the category satisfaction chart under target, marked for the page and for tests.
    $("chart-category-satisfaction").setAttribute("data-below-target",
      String(s.categories.filter(function (x) { return x.below_target; }).length));
  }

  /* ---------- the drill-down ---------- */
  function drillParams(drill) {
    var params = filters();
    Object.keys(drill).forEach(function (k) { if (k !== "label") params.set(k, drill[k]); });
    return params;
  }
  function showDrill(drill, page) {
    if (!drill) return;
    var params = drillParams(drill);
    state.drill = drill; state.page = page;
    exportLinks("drill-", params, "tickets");
    params.set("page", String(page));
    params.set("per_page", "50");
    return C.api("GET", "/api/v1/reports/tickets?" + params.toString()).then(function (found) {
      var box = $("drill");
      box.hidden = false;
      box.setAttribute("data-total", String(found.total));
      $("drill-title").textContent = t("drill_title") + drill.label;
      $("drill-total").textContent = t("drill_total").replace("{n}", String(found.total));
      var pages = Math.max(1, Math.ceil(found.total / found.per_page));
      $("drill-page").textContent = page + " / " + pages;
      $("drill-prev").disabled = page <= 1;
      $("drill-next").disabled = page >= pages;
      var body = $("drill-rows");
      C.clear(body);
      found.items.forEach(function (ticket) {
        var row = el("tr");
        row.setAttribute("data-number", ticket.number);
        var cell = el("td");
        var a = el("a", "number", ticket.number);
        a.href = "#ticket=" + encodeURIComponent(ticket.number);
        a.addEventListener("click", function (e) { e.preventDefault(); openTicket(ticket.number); });
        cell.appendChild(a);
        row.appendChild(cell);
        [new Date(ticket.created_at).toLocaleString(document.documentElement.lang),
          t("status." + ticket.status), t("priority." + ticket.priority), t("channel." + ticket.channel),
          categoryName(ticket.category_id), ticket.contact_name || "—", ticket.subject || ""
        ].forEach(function (text) { row.appendChild(el("td", null, text)); });
        body.appendChild(row);
      });
      box.scrollIntoView({ block: "nearest" });
    }).catch(C.failed);
  }
  function openTicket(number) {
    if (C.openTicket) { C.show("desk"); history.replaceState(null, "", "#ticket=" + number); C.openTicket(number); return; }
    location.hash = "#ticket=" + number;
    location.reload();  // the console opens the ticket named in the address at start
  }

  /* ---------- hooks into the console ---------- */
  function open() {
    if (!allowed()) return;
    if (!state.built) build();
    C.show("reports");
    loadCategories().then(load);
  }
  function entered() {
    $("nav-reports").hidden = !allowed();
    if (location.hash === "#reports") open();
  }
  // The page's button beside the others (admin.js, kb.js); the view is built on first visit,
  // so nothing of it exists for an agent who may not see it.
  var nav = words("button", "nav_reports", "nav-btn");
  nav.type = "button";
  nav.id = "nav-reports";
  nav.setAttribute("data-go", "reports");
  nav.hidden = true;
  nav.addEventListener("click", open);
  $("page-nav").appendChild(nav);
  document.addEventListener("gw:enter", entered);
  document.addEventListener("gw:lang", function () {
    if (!state.built) return;
    document.querySelectorAll("#reports-view [data-i18n]").forEach(function (node) { node.textContent = t(node.getAttribute("data-i18n")); });
    if (state.summary) {
      exportLinks("export-summary-", filters(), "summary");
      exportLinks("export-charts-", filters(), "charts");
      exportLinks("export-tickets-", filters(), "tickets");
    }
    if (state.drill) showDrill(state.drill, state.page);
    if (document.body.getAttribute("data-view") === "reports") render();
  });
  if (C.me()) entered();
})();
