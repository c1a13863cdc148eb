/* The console's admin page: teams, categories (and the team each one dispatches to), agents and
 * canned responses, over the directory API. Supervisors see it and may add canned responses;
 * teams and categories are added by admins (the API says who may do what, this page follows).
 *
 * Same rule as console.js: names and texts go on the page with textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE;
  var RANK = { agent: 1, supervisor: 2, admin: 3 };
  Object.assign(window.GW_I18N["zh-CN"], {
    nav_admin: "管理", admin_teams: "客服组", admin_categories: "问题分类",
    admin_agents: "坐席", admin_canned: "快捷回复", col_name: "名称", col_team: "所属组",
    col_parent: "上级分类", col_role: "角色", col_capacity: "接单上限", col_online: "在线",
    col_email: "邮箱", col_shortcut: "快捷码", col_title: "标题", col_text: "内容",
    col_agents: "坐席数", team_name: "组名", category_name: "分类名", top_level: "（一级分类）",
    no_team_short: "（无）", create: "添加", created: "已添加", shortcut_hint: "如 thanks",
    agents_note: "仅列出启用的账号；角色、组和上限用 gateway agents 命令修改。",
    admin_only: "仅管理员可添加。",
    "role.agent": "客服专员", "role.supervisor": "主管", "role.admin": "管理员"
  });
  Object.assign(window.GW_I18N.en, {
    nav_admin: "Admin", admin_teams: "Teams", admin_categories: "Categories",
    admin_agents: "Agents", admin_canned: "Canned responses", col_name: "Name", col_team: "Team",
    col_parent: "Parent", col_role: "Role", col_capacity: "Capacity", col_online: "Online",
    col_email: "Email", col_shortcut: "Shortcut", col_title: "Title", col_text: "Text",
    col_agents: "Agents", team_name: "Team name", category_name: "Category name",
    top_level: "(top level)", no_team_short: "(none)", create: "Add", created: "Added",
    shortcut_hint: "e.g. thanks",
    agents_note: "Active accounts only; change roles, teams and capacity with gateway agents.",
    admin_only: "Only admins can add these.",
    "role.agent": "Agent", "role.supervisor": "Supervisor", "role.admin": "Admin"
  });
  var t = C.t, el = C.el;
  var data = { teams: [], categories: [], agents: [], canned: [] };

  function at(role) { var me = C.me(); return !!me && RANK[me.role] >= RANK[role]; }
  function words(tag, key, cls) {
    var node = el(tag, cls, t(key));
    node.setAttribute("data-i18n", key);
    return node;
  }
  function control(tag, id, attrs) {
    var node = document.createElement(tag);
    node.id = id;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (attrs && attrs["data-i18n-placeholder"]) node.placeholder = t(attrs["data-i18n-placeholder"]);
    return node;
  }
  function field(key, node) {
    var label = el("label", "field");
    label.appendChild(words("span", key));
    label.appendChild(node);
    return label;
  }
  function table(id, keys) {
    var tbl = el("table", "grid");
    var row = el("tr");
    keys.forEach(function (k) { row.appendChild(words("th", k)); });
    tbl.appendChild(el("thead")).appendChild(row);
    tbl.appendChild(control("tbody", id));
    return tbl;
  }
  function cells(tbody, id, values) {
    var row = el("tr");
    row.setAttribute("data-id", String(id));
    values.forEach(function (v) { row.appendChild(el("td", null, v)); });
    tbody.appendChild(row);
    return row;
  }
  function form(id, role, fields, errorId) {
    var f = control("form", id, { "class": "admin-form", "data-role": role });
    fields.forEach(function (node) { f.appendChild(node); });
    var submit = words("button", "create");
    submit.type = "submit"; submit.id = id + "-submit";
    f.appendChild(submit);
    f.appendChild(control("p", errorId, { "class": "error", role: "alert" }));
    return f;
  }

  /* ---------- the page ---------- */
  function build() {
    var page = control("section", "admin-view", { "class": "page-view admin" });
    var teams = el("div", "admin-block");
    teams.appendChild(words("h2", "admin_teams"));
    teams.appendChild(table("admin-teams", ["col_name", "col_agents"]));
    teams.appendChild(form("team-form", "admin", [
      field("team_name", control("input", "team-name", { required: "", maxlength: "120" }))
    ], "team-error"));
    var cats = el("div", "admin-block");
    cats.appendChild(words("h2", "admin_categories"));
    cats.appendChild(table("admin-categories", ["col_name", "col_parent", "col_team"]));
    cats.appendChild(form("category-form", "admin", [
      field("category_name", control("input", "category-name", { required: "", maxlength: "120" })),
      field("col_parent", control("select", "category-parent")),
      field("col_team", control("select", "category-team"))
    ], "category-error"));
    var agents = el("div", "admin-block");
    agents.appendChild(words("h2", "admin_agents"));
    agents.appendChild(table("admin-agents",
      ["col_name", "col_email", "col_role", "col_team", "col_capacity", "col_online"]));
    agents.appendChild(words("p", "agents_note", "muted"));
    var canned = el("div", "admin-block wide");
    canned.appendChild(words("h2", "admin_canned"));
    canned.appendChild(table("admin-canned", ["col_shortcut", "col_title", "col_text"]));
    canned.appendChild(form("canned-form", "supervisor", [
      field("col_shortcut", control("input", "canned-shortcut",
        { required: "", maxlength: "60", pattern: "[\\w\\-]+", "data-i18n-placeholder": "shortcut_hint" })),
      field("col_title", control("input", "canned-title", { required: "", maxlength: "200" })),
      field("col_text", control("textarea", "canned-text", { required: "", rows: "3", maxlength: "20000" }))
    ], "canned-error"));
    [teams, cats, agents, canned].forEach(function (b) { page.appendChild(b); });
    teams.appendChild(words("p", "admin_only", "muted admin-only-note"));
    document.body.insertBefore(page, document.getElementById("toasts"));

    var nav = control("button", "nav-admin", { type: "button", "class": "nav-btn", "data-go": "admin" });
    nav.setAttribute("data-i18n", "nav_admin");
    nav.textContent = t("nav_admin");
    nav.hidden = true;
    nav.addEventListener("click", load);
    document.getElementById("page-nav").appendChild(nav);

    submitter("team-form", "team-error", function () {
      return C.api("POST", "/api/v1/teams", { name: $("team-name").value.trim() });
    });
    submitter("category-form", "category-error", function () {
      var body = { name: $("category-name").value.trim() };
      if ($("category-parent").value) body.parent_id = Number($("category-parent").value);
      if ($("category-team").value) body.team_id = Number($("category-team").value);
      return C.api("POST", "/api/v1/categories", body);
    });
    submitter("canned-form", "canned-error", function () {
      return C.api("POST", "/api/v1/canned", {
        shortcut: $("canned-shortcut").value.trim().replace(/^\//, ""),
        title: $("canned-title").value.trim(), text: $("canned-text").value
      });
    });
  }
  function $(id) { return document.getElementById(id); }
  function submitter(formId, errorId, send) {
    $(formId).addEventListener("submit", function (event) {
      event.preventDefault();
      $(errorId).textContent = "";
      send().then(function () {
        $(formId).reset();
        C.toast(t("created"));
        return load();
      }).catch(function (err) {
        $(errorId).textContent = t("error") + (err.detail || err) + (err.field ? " (" + err.field + ")" : "");
      });
    });
  }

  /* ---------- data ---------- */
  function load() {
    var lists = ["teams", "categories", "agents", "canned"];
    return Promise.all(lists.map(function (name) {
      return C.api("GET", "/api/v1/" + name).then(function (found) { data[name] = found.items; });
    })).then(render).catch(C.failed);
  }
  function teamName(id) {
    var team = data.teams.find(function (x) { return x.id === id; });
    return team ? team.name : (id === null ? t("no_team_short") : "#" + id);
  }
  function categoryName(id) {
    var cat = data.categories.find(function (x) { return x.id === id; });
    return cat ? cat.name : "—";
  }
  function options(select, firstKey, items, name) {
    var chosen = select.value;
    C.clear(select);
    var first = words("option", firstKey);
    first.value = "";
    select.appendChild(first);
    items.forEach(function (item) {
      var option = el("option", null, name(item));
      option.value = String(item.id);
      select.appendChild(option);
    });
    select.value = chosen;
  }
  function render() {
    var body = $("admin-teams");
    C.clear(body);
    data.teams.forEach(function (team) {
      var count = data.agents.filter(function (a) { return a.team_id === team.id; }).length;
      cells(body, team.id, [team.name, String(count)]);
    });
    body = $("admin-categories");
    C.clear(body);
    data.categories.forEach(function (cat) {
      cells(body, cat.id, [cat.name, cat.parent_id === null ? "—" : categoryName(cat.parent_id), teamName(cat.team_id)]);
    });
    body = $("admin-agents");
    C.clear(body);
    data.agents.forEach(function (a) {
      var row = cells(body, a.id, [a.name, a.email, t("role." + a.role), teamName(a.team_id),
        String(a.capacity), a.online ? t("yes") : t("no")]);
      row.setAttribute("data-role", a.role);
    });
    body = $("admin-canned");
    C.clear(body);
    data.canned.forEach(function (c) {
      var row = cells(body, c.id, ["/" + c.shortcut, c.title, c.text]);
      row.setAttribute("data-shortcut", c.shortcut);
    });
    options($("category-parent"), "top_level",
      data.categories.filter(function (c) { return c.parent_id === null; }), function (c) { return c.name; });
    options($("category-team"), "no_team_short", data.teams, function (x) { return x.name; });
    document.querySelectorAll("#admin-view [data-role]").forEach(function (f) {
      if (f.tagName === "FORM") f.hidden = !at(f.getAttribute("data-role"));
    });
    document.querySelectorAll("#admin-view .admin-only-note").forEach(function (n) { n.hidden = at("admin"); });
  }

  /* The building blocks, for the knowledge-base page (kb.js). */
  window.GW_FORMS = { at: at, words: words, control: control, field: field, table: table, cells: cells };

  /* ---------- hooks into the console ---------- */
  function entered() {
    $("nav-admin").hidden = !at("supervisor");
    if (location.hash === "#admin" && at("supervisor")) { C.show("admin"); load(); }
  }
  build();
  document.addEventListener("gw:enter", entered);
  document.addEventListener("gw:lang", function () { if (document.body.getAttribute("data-view") === "admin") render(); });
  if (C.me()) entered();
})();
