/* The console's report page (supervisors and admins): its toolbar (period, filters, exports),
 * loading the report, and its hooks into the console (the nav button, gw:enter, gw:lang). The
 * figures are drawn by report_charts.js (headline figures, inline SVG charts, the categories
 * under 80% satisfaction marked) and the drill-down from any of them to the tickets behind it is
 * report_drill.js; index.html loads both before this file.
 *
 * Every count comes from /api/v1/reports/*, which the database computes; the drill-down asks
 * /api/v1/reports/tickets with the same filters, so a list is exactly as long as its figure.
 * Same rule as console.js: names, subjects and category names go on the page with textContent,
 * never parsed as markup.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, Charts = window.GW_REPORT_CHARTS, Drill = window.GW_REPORT_DRILL;
  var RANK = { agent: 1, supervisor: 2, admin: 3 };
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
  var t = C.t, el = C.el, words = C.words;
  var state = { built: false, summary: null, charts: null, statusTimes: null, categories: new Map() };

  function $(id) { return document.getElementById(id); }
  function allowed() { var me = C.me(); return !!me && RANK[me.role] >= RANK.supervisor; }

  /* ---------- dates and names ---------- */
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

    view.appendChild(Drill.section({ filters: filters, categoryName: categoryName,
      exportLinks: exportLinks, link: link }));

    period.addEventListener("change", function () { setPeriod(period.value); });
    ["report-from", "report-to"].forEach(function (id) {
      $(id).addEventListener("input", function () { period.value = "custom"; });
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
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
        Charts.statusTimes(state.statusTimes);
      }).catch(function () { return null; });
    }).catch(function (err) {
      $("report-error").textContent = err.status === 403 ? t("forbidden_reports") : t("error") + (err.detail || err);
      document.body.setAttribute("data-report", "failed");
    });
  }

  /* ---------- drawing (report_charts.js) ---------- */
  function render() {
    var s = state.summary, c = state.charts;
    if (!s || !c) return;
    Charts.draw(s, c, state.statusTimes, categoryName);
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
    Drill.again();
    if (document.body.getAttribute("data-view") === "reports") render();
  });
  if (C.me()) entered();
})();
