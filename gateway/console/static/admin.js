/* The console's admin page: teams, categories (and the team each one dispatches to), agents and
 * canned responses, over the directory API. Supervisors see it and may add canned responses;
 * admins add, edit and delete teams, categories and canned responses, and change agents' role,
 * team, capacity and whether they may log in (the API says who may do what, this page follows).
 * Editing reuses the add form (filled, "Save" instead of "Add"); deleting takes a second click,
 * and a refusal (still in use, or an admin locking themselves out) shows the API's reason.
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
    agents_note: "已停用的账号不能登录，也不再接单；停用时其未结工单退回队列。",
    admin_only: "仅管理员可添加。", col_actions: "操作", edit: "编辑", "delete": "删除",
    delete_confirm: "再次点击确认删除", save: "保存", cancel: "取消", saved: "已保存",
    deleted: "已删除", col_active: "账号", active_on: "启用", active_off: "已停用",
    edit_agent: "修改坐席：", agent_active: "启用（可登录、可接单）",
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
    agents_note: "Deactivated accounts cannot log in and get no tickets; their open tickets go back to the queue.",
    admin_only: "Only admins can add these.", col_actions: "Actions", edit: "Edit",
    "delete": "Delete", delete_confirm: "Click again to delete", save: "Save", cancel: "Cancel",
    saved: "Saved", deleted: "Deleted", col_active: "Account", active_on: "Active",
    active_off: "Deactivated", edit_agent: "Edit agent: ",
    agent_active: "Active (may log in, gets tickets)",
    "role.agent": "Agent", "role.supervisor": "Supervisor", "role.admin": "Admin"
  });
  var t = C.t, el = C.el, words = C.words;
  var data = { teams: [], categories: [], agents: [], canned: [] };
  /* What each form edits when it is not adding: the row's id, or null. */
  var editing = { team: null, category: null, canned: null, agent: null };
  var ROLES = ["agent", "supervisor", "admin"];

  function at(role) { var me = C.me(); return !!me && RANK[me.role] >= RANK[role]; }
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
  function table(id, keys, withActions) {
    var tbl = el("table", "grid");
    var row = el("tr");
    keys.forEach(function (k) { row.appendChild(words("th", k)); });
    if (withActions) row.appendChild(words("th", "col_actions", "admin-actions"));
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
    var cancel = words("button", "cancel");
    cancel.type = "button"; cancel.id = id + "-cancel"; cancel.hidden = true;
    f.appendChild(cancel);
    f.appendChild(control("p", errorId, { "class": "error", role: "alert" }));
    return f;
  }

  /* ---------- the page ---------- */
  function build() {
    var page = control("section", "admin-view", { "class": "page-view admin" });
    var teams = el("div", "admin-block");
    teams.appendChild(words("h2", "admin_teams"));
    teams.appendChild(table("admin-teams", ["col_name", "col_agents"], true));
    teams.appendChild(form("team-form", "admin", [
      field("team_name", control("input", "team-name", { required: "", maxlength: "120" }))
    ], "team-error"));
    var cats = el("div", "admin-block");
    cats.appendChild(words("h2", "admin_categories"));
    cats.appendChild(table("admin-categories", ["col_name", "col_parent", "col_team"], true));
    cats.appendChild(form("category-form", "admin", [
      field("category_name", control("input", "category-name", { required: "", maxlength: "120" })),
      field("col_parent", control("select", "category-parent")),
      field("col_team", control("select", "category-team"))
    ], "category-error"));
    var agents = el("div", "admin-block");
    agents.appendChild(words("h2", "admin_agents"));
    agents.appendChild(table("admin-agents",
      ["col_name", "col_email", "col_role", "col_team", "col_capacity", "col_online", "col_active"], true));
    var who = control("p", "agent-form-who", { "class": "form-who" });
    agents.appendChild(form("agent-form", "admin", [
      who,
      field("col_role", control("select", "agent-role")),
      field("col_team", control("select", "agent-team")),
      field("col_capacity", control("input", "agent-capacity",
        { type: "number", min: "0", max: "1000", required: "" })),
      check("agent_active", control("input", "agent-active", { type: "checkbox" }))
    ], "agent-error"));
    agents.appendChild(words("p", "agents_note", "muted"));
    var canned = el("div", "admin-block wide");
    canned.appendChild(words("h2", "admin_canned"));
    canned.appendChild(table("admin-canned", ["col_shortcut", "col_title", "col_text"], true));
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

    submitter("team", function () { return { name: $("team-name").value.trim() }; });
    submitter("category", function () {
      var body = { name: $("category-name").value.trim() };
      var parent = $("category-parent").value, team = $("category-team").value;
      // Editing: an empty choice clears it (null); adding: it is simply not sent.
      if (parent || editing.category !== null) body.parent_id = parent ? Number(parent) : null;
      if (team || editing.category !== null) body.team_id = team ? Number(team) : null;
      return body;
    });
    submitter("canned", function () {
      return {
        shortcut: $("canned-shortcut").value.trim().replace(/^\//, ""),
        title: $("canned-title").value.trim(), text: $("canned-text").value
      };
    });
    submitter("agent", function () {
      return {
        role: $("agent-role").value, team_id: $("agent-team").value ? Number($("agent-team").value) : null,
        capacity: Number($("agent-capacity").value), active: $("agent-active").checked
      };
    });
  }
  function check(key, input) {
    var label = el("label", "field check");
    label.appendChild(input);
    label.appendChild(words("span", key));
    return label;
  }
  function $(id) { return document.getElementById(id); }
  var KINDS = {
    team: { path: "/api/v1/teams", fill: function (x) { $("team-name").value = x.name; } },
    category: { path: "/api/v1/categories", fill: function (c) {
      $("category-name").value = c.name;
      $("category-parent").value = c.parent_id === null ? "" : String(c.parent_id);
      $("category-team").value = c.team_id === null ? "" : String(c.team_id);
    } },
    canned: { path: "/api/v1/canned", fill: function (c) {
      $("canned-shortcut").value = c.shortcut; $("canned-title").value = c.title; $("canned-text").value = c.text;
    } },
    agent: { path: "/api/v1/agents", fill: function (a) {
      $("agent-form-who").textContent = t("edit_agent") + a.name + " <" + a.email + ">";
      $("agent-role").value = a.role;
      $("agent-team").value = a.team_id === null ? "" : String(a.team_id);
      $("agent-capacity").value = String(a.capacity);
      $("agent-active").checked = a.active;
    } }
  };
  function showError(kind, err) {
    $(kind + "-error").textContent = t("error") + ((err && err.detail) || err) + (err && err.field ? " (" + err.field + ")" : "");
  }
  /* The form of `kind` edits `item` (or, with null, adds again). */
  function setEditing(kind, item) {
    var f = $(kind + "-form");
    editing[kind] = item ? item.id : null;
    f.reset();
    $(kind + "-error").textContent = "";
    if (item) { f.setAttribute("data-editing", String(item.id)); KINDS[kind].fill(item); }
    else f.removeAttribute("data-editing");
    var submit = $(kind + "-form-submit");
    submit.setAttribute("data-i18n", item ? "save" : "create");
    submit.textContent = t(item ? "save" : "create");
    $(kind + "-form-cancel").hidden = !item;
    if (kind === "agent") f.hidden = !item;
    if (item) f.querySelector("input, select").focus();
  }
  function submitter(kind, body) {
    $(kind + "-form").addEventListener("submit", function (event) {
      event.preventDefault();
      $(kind + "-error").textContent = "";
      var id = editing[kind];
      var sent = id === null ? C.api("POST", KINDS[kind].path, body())
        : C.api("PATCH", KINDS[kind].path + "/" + id, body());
      sent.then(function () {
        setEditing(kind, null);
        C.toast(t(id === null ? "created" : "saved"));
        return load();
      }).catch(function (err) { showError(kind, err); });
    });
    $(kind + "-form-cancel").addEventListener("click", function () { setEditing(kind, null); });
  }
  function remove(kind, item, button) {
    if (!button.hasAttribute("data-armed")) {
      button.setAttribute("data-armed", "1");
      button.setAttribute("data-i18n", "delete_confirm");
      button.textContent = t("delete_confirm");
      return;
    }
    $(kind + "-error").textContent = "";
    C.api("DELETE", KINDS[kind].path + "/" + item.id).then(function () {
      if (editing[kind] === item.id) setEditing(kind, null);
      C.toast(t("deleted"));
      return load();
    }).catch(function (err) { showError(kind, err); load(); });
  }
  /* Edit (and, but for agents, delete) buttons at the end of a row: admins only. */
  function actions(row, kind, item) {
    if (!at("admin")) return;
    var cell = row.appendChild(el("td", "admin-actions"));
    var edit = cell.appendChild(words("button", "edit", "row-edit"));
    edit.type = "button";
    edit.addEventListener("click", function () { setEditing(kind, item); });
    if (kind === "agent") return;
    var drop = cell.appendChild(words("button", "delete", "row-delete danger"));
    drop.type = "button";
    drop.addEventListener("click", function () { remove(kind, item, drop); });
  }

  /* ---------- data ---------- */
  function load() {
    var lists = ["teams", "categories", "agents", "canned"];
    return Promise.all(lists.map(function (name) {
      var path = "/api/v1/" + name + (name === "agents" ? "?active=all" : "");
      return C.api("GET", path).then(function (found) { data[name] = found.items; });
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
      actions(cells(body, team.id, [team.name, String(count)]), "team", team);
    });
    body = $("admin-categories");
    C.clear(body);
    data.categories.forEach(function (cat) {
      actions(cells(body, cat.id, [cat.name, cat.parent_id === null ? "—" : categoryName(cat.parent_id),
        teamName(cat.team_id)]), "category", cat);
    });
    body = $("admin-agents");
    C.clear(body);
    data.agents.forEach(function (a) {
      var row = cells(body, a.id, [a.name, a.email, t("role." + a.role), teamName(a.team_id),
        String(a.capacity), a.online ? t("yes") : t("no"), t(a.active ? "active_on" : "active_off")]);
      row.setAttribute("data-role", a.role);
      row.setAttribute("data-active", String(a.active));
      if (!a.active) row.className = "inactive";
      actions(row, "agent", a);
    });
    body = $("admin-canned");
    C.clear(body);
    data.canned.forEach(function (c) {
      var row = cells(body, c.id, ["/" + c.shortcut, c.title, c.text]);
      row.setAttribute("data-shortcut", c.shortcut);
      actions(row, "canned", c);
    });
    options($("category-parent"), "top_level",
      data.categories.filter(function (c) { return c.parent_id === null; }), function (c) { return c.name; });
    options($("category-team"), "no_team_short", data.teams, function (x) { return x.name; });
    options($("agent-team"), "no_team_short", data.teams, function (x) { return x.name; });
    roleOptions();
    document.querySelectorAll("#admin-view [data-role]").forEach(function (f) {
      if (f.tagName === "FORM") f.hidden = !at(f.getAttribute("data-role")) || (f.id === "agent-form" && editing.agent === null);
    });
    document.querySelectorAll("#admin-view th.admin-actions").forEach(function (n) { n.hidden = !at("admin"); });
    document.querySelectorAll("#admin-view .admin-only-note").forEach(function (n) { n.hidden = at("admin"); });
  }

  function roleOptions() {
    var select = $("agent-role"), chosen = select.value;
    C.clear(select);
    ROLES.forEach(function (role) {
      var option = words("option", "role." + role);
      option.value = role;
      select.appendChild(option);
    });
    select.value = chosen || "agent";
  }

  /* The building blocks, for the knowledge-base page (kb.js). */
  window.GW_FORMS = { at: at, control: control, field: field, table: table, cells: cells };

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
