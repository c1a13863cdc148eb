/* The console's knowledge-base page: entries (search, create, edit, disable, delete) over
 * /api/v1/kb/, and the questions the bot could not answer or whose answer did not help, with
 * counts. Supervisors read; admins write (as the API allows). A saved edit answers customers
 * once the gateway's background rebuild finishes: no restart.
 *
 * Builds on admin.js (window.GW_FORMS). Entry texts go on the page with textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, F = window.GW_FORMS;
  Object.assign(window.GW_I18N["zh-CN"], {
    nav_kb: "知识库", kb_entries: "知识库条目", kb_search: "搜索编号、标题或问法",
    kb_all: "全部", kb_enabled_only: "已启用", kb_disabled_only: "已停用", kb_new: "新建条目",
    kb_id: "编号", kb_title: "标准问题", kb_examples: "其他问法（每行一个）",
    kb_answer_zh: "答案（中文）", kb_answer_en: "答案（英文）", kb_category: "分类",
    kb_enabled: "启用", kb_updated: "更新时间", kb_save: "保存", kb_delete: "删除",
    kb_delete_confirm: "再次点击确认删除", kb_cancel: "取消", kb_saved: "已保存，索引正在后台更新",
    kb_deleted: "已删除", kb_editing: "编辑条目", kb_creating: "新建条目",
    kb_misses: "未解决的问题", kb_kind: "类型", kb_question: "问题", kb_entry: "条目",
    kb_count: "次数", kb_last_seen: "最近", kb_add_from: "建为条目", kb_read_only: "只读：仅管理员可修改。",
    "miss.unanswered": "未能回答", "miss.not_helpful": "回答无帮助", kb_no_answer: "（无答案）"
  });
  Object.assign(window.GW_I18N.en, {
    nav_kb: "Knowledge base", kb_entries: "Entries", kb_search: "Search id, title or phrasing",
    kb_all: "All", kb_enabled_only: "Enabled", kb_disabled_only: "Disabled", kb_new: "New entry",
    kb_id: "Id", kb_title: "Question", kb_examples: "Other phrasings (one per line)",
    kb_answer_zh: "Answer (Chinese)", kb_answer_en: "Answer (English)", kb_category: "Category",
    kb_enabled: "Enabled", kb_updated: "Updated", kb_save: "Save", kb_delete: "Delete",
    kb_delete_confirm: "Click again to delete", kb_cancel: "Cancel",
    kb_saved: "Saved; the index is rebuilding in the background", kb_deleted: "Deleted",
    kb_editing: "Edit entry", kb_creating: "New entry", kb_misses: "Questions not answered",
    kb_kind: "Kind", kb_question: "Question", kb_entry: "Entry", kb_count: "Count",
    kb_last_seen: "Last seen", kb_add_from: "Make an entry", kb_read_only: "Read only: admins edit.",
    "miss.unanswered": "Not answered", "miss.not_helpful": "Did not help", kb_no_answer: "(no answer)"
  });
  var t = C.t, el = C.el;
  var state = { items: [], misses: [], entry: null, creating: false, timer: null };

  function $(id) { return document.getElementById(id); }
  function stamp(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString(document.documentElement.lang);
  }
  function choice(select, value, key) {
    var option = C.words("option", key);
    option.value = value;
    select.appendChild(option);
  }

  /* ---------- the page ---------- */
  function build() {
    var page = F.control("section", "kb-view", { "class": "page-view kb" });
    var list = el("div", "kb-list");
    list.appendChild(C.words("h2", "kb_entries"));
    var bar = el("div", "kb-toolbar");
    bar.appendChild(F.control("input", "kb-search", { type: "search", "data-i18n-placeholder": "kb_search" }));
    var filter = F.control("select", "kb-filter");
    choice(filter, "", "kb_all"); choice(filter, "true", "kb_enabled_only"); choice(filter, "false", "kb_disabled_only");
    bar.appendChild(filter);
    var create = C.words("button", "kb_new");
    create.type = "button"; create.id = "kb-new";
    bar.appendChild(create);
    list.appendChild(bar);
    list.appendChild(F.table("kb-rows", ["kb_id", "kb_title", "kb_category", "kb_enabled", "kb_updated"]));

    var editor = F.control("form", "kb-form", { "class": "kb-editor" });
    editor.hidden = true;
    editor.appendChild(F.control("h2", "kb-form-title"));
    var fields = el("fieldset", "kb-fields");
    fields.id = "kb-fields";
    fields.appendChild(F.field("kb_id", F.control("input", "kb-id", { required: "", maxlength: "100", pattern: "\\S(.*\\S)?" })));
    fields.appendChild(F.field("kb_title", F.control("input", "kb-title", { required: "", maxlength: "500" })));
    fields.appendChild(F.field("kb_examples", F.control("textarea", "kb-examples", { rows: "5" })));
    fields.appendChild(F.field("kb_answer_zh", F.control("textarea", "kb-answer-zh", { rows: "4", lang: "zh-CN" })));
    fields.appendChild(F.field("kb_answer_en", F.control("textarea", "kb-answer-en", { rows: "4", lang: "en" })));
    fields.appendChild(F.field("kb_category", F.control("input", "kb-category", { maxlength: "200" })));
    var enabled = el("label", "field check");
    enabled.appendChild(F.control("input", "kb-enabled", { type: "checkbox" }));
    enabled.appendChild(C.words("span", "kb_enabled"));
    fields.appendChild(enabled);
    editor.appendChild(fields);
    var actions = el("div", "kb-actions");
    [["kb-save", "kb_save", "submit", ""], ["kb-delete", "kb_delete", "button", "danger"],
      ["kb-cancel", "kb_cancel", "button", "secondary"]].forEach(function (b) {
      var button = C.words("button", b[1], b[3]);
      button.id = b[0]; button.type = b[2];
      actions.appendChild(button);
    });
    editor.appendChild(actions);
    editor.appendChild(C.words("p", "kb_read_only", "muted kb-read-only"));
    editor.appendChild(F.control("p", "kb-error", { "class": "error", role: "alert" }));

    var misses = el("div", "kb-misses");
    misses.appendChild(C.words("h2", "kb_misses"));
    var kind = F.control("select", "kb-miss-kind");
    choice(kind, "", "kb_all"); choice(kind, "unanswered", "miss.unanswered"); choice(kind, "not_helpful", "miss.not_helpful");
    misses.appendChild(kind);
    misses.appendChild(F.table("kb-miss-rows", ["kb_kind", "kb_question", "kb_entry", "kb_count", "kb_last_seen", "kb_add_from"]));

    [list, editor, misses].forEach(function (part) { page.appendChild(part); });
    document.body.insertBefore(page, $("toasts"));
    var nav = F.control("button", "nav-kb", { type: "button", "class": "nav-btn", "data-go": "kb", "data-i18n": "nav_kb" });
    nav.textContent = t("nav_kb");
    nav.hidden = true;
    nav.addEventListener("click", load);
    $("page-nav").appendChild(nav);

    $("kb-search").addEventListener("input", function () {
      clearTimeout(state.timer);
      state.timer = setTimeout(loadEntries, 250);
    });
    filter.addEventListener("change", loadEntries);
    kind.addEventListener("change", loadMisses);
    create.addEventListener("click", function () { edit(null, ""); });
    $("kb-cancel").addEventListener("click", function () { $("kb-form").hidden = true; state.entry = null; });
    $("kb-delete").addEventListener("click", remove);
    editor.addEventListener("submit", function (event) { event.preventDefault(); save(); });
  }

  /* ---------- data ---------- */
  function load() { return Promise.all([loadEntries(), loadMisses()]); }
  function loadEntries() {
    var params = new URLSearchParams();
    if ($("kb-search").value.trim()) params.set("q", $("kb-search").value.trim());
    if ($("kb-filter").value) params.set("enabled", $("kb-filter").value);
    return C.api("GET", "/api/v1/kb/entries?" + params.toString()).then(function (found) {
      state.items = found.items;
      renderEntries();
    }).catch(C.failed);
  }
  function loadMisses() {
    var params = new URLSearchParams({ limit: "100" });
    if ($("kb-miss-kind").value) params.set("kind", $("kb-miss-kind").value);
    return C.api("GET", "/api/v1/kb/misses?" + params.toString()).then(function (found) {
      state.misses = found.items;
      renderMisses();
    }).catch(C.failed);
  }
  function renderEntries() {
    var body = $("kb-rows");
    C.clear(body);
    state.items.forEach(function (entry) {
      var row = F.cells(body, entry.id, [entry.id, entry.title, entry.category || "—",
        entry.enabled ? t("yes") : t("no"), stamp(entry.updated_at)]);
      row.className = "kb-row" + (entry.enabled ? "" : " kb-off") + (state.entry && state.entry.id === entry.id ? " selected" : "");
      row.tabIndex = 0;
      row.addEventListener("click", function () { edit(entry, entry.title); });
    });
    $("kb-new").hidden = !F.at("admin");
  }
  function renderMisses() {
    var body = $("kb-miss-rows");
    C.clear(body);
    state.misses.forEach(function (miss, i) {
      var row = F.cells(body, i, [t("miss." + miss.kind), miss.question, miss.entry_id || "—",
        String(miss.count), stamp(miss.last_seen)]);
      row.setAttribute("data-kind", miss.kind);
      var cell = el("td");
      if (F.at("admin")) {
        var add = C.words("button", "kb_add_from", "secondary kb-add-from");
        add.type = "button";
        add.addEventListener("click", function () { edit(null, miss.question); });
        cell.appendChild(add);
      }
      row.appendChild(cell);
    });
  }

  /* ---------- the editor ---------- */
  function edit(entry, title) {
    var admin = F.at("admin");
    state.entry = entry;
    state.creating = entry === null;
    var answers = (entry && entry.answers) || {};
    $("kb-form-title").textContent = t(entry ? "kb_editing" : "kb_creating");
    $("kb-form-title").setAttribute("data-i18n", entry ? "kb_editing" : "kb_creating");
    $("kb-id").value = entry ? entry.id : "";
    $("kb-id").readOnly = !!entry;
    $("kb-title").value = title;
    $("kb-examples").value = entry ? entry.examples.join("\n") : "";
    $("kb-answer-zh").value = answers["zh-CN"] || "";
    $("kb-answer-en").value = answers.en || "";
    $("kb-category").value = (entry && entry.category) || "";
    $("kb-enabled").checked = entry ? entry.enabled : true;
    $("kb-fields").disabled = !admin;
    $("kb-save").hidden = !admin;
    $("kb-delete").hidden = !admin || !entry;
    disarm();
    document.querySelector("#kb-form .kb-read-only").hidden = admin;
    $("kb-error").textContent = "";
    $("kb-form").hidden = false;
    $("kb-form").setAttribute("data-entry", entry ? entry.id : "");
    renderEntries();
    (entry ? $("kb-title") : $("kb-id")).focus();
  }
  function disarm() {
    var button = $("kb-delete");
    button.removeAttribute("data-armed");
    button.setAttribute("data-i18n", "kb_delete");
    button.textContent = t("kb_delete");
  }
  function body() {
    // Other locales an import brought in are kept; the two edited here replace theirs.
    var answers = Object.assign({}, (state.entry && state.entry.answers) || {});
    [["zh-CN", "kb-answer-zh"], ["en", "kb-answer-en"]].forEach(function (pair) {
      var text = $(pair[1]).value.trim();
      if (text) answers[pair[0]] = text; else delete answers[pair[0]];
    });
    return {
      title: $("kb-title").value.trim(),
      examples: $("kb-examples").value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean),
      answers: answers,
      category: $("kb-category").value.trim() || null,
      enabled: $("kb-enabled").checked
    };
  }
  function save() {
    var payload = body();
    $("kb-error").textContent = "";
    var request = state.creating
      ? C.api("POST", "/api/v1/kb/entries", Object.assign({ id: $("kb-id").value.trim() }, payload))
      : C.api("PATCH", "/api/v1/kb/entries/" + encodeURIComponent(state.entry.id), payload);
    request.then(function (saved) {
      C.toast(t("kb_saved"));
      return loadEntries().then(function () { edit(saved, saved.title); });
    }).catch(showError);
  }
  function remove() {
    var button = $("kb-delete");
    if (!state.entry) return;
    if (!button.hasAttribute("data-armed")) {
      button.setAttribute("data-armed", "1");
      button.setAttribute("data-i18n", "kb_delete_confirm");
      button.textContent = t("kb_delete_confirm");
      return;
    }
    C.api("DELETE", "/api/v1/kb/entries/" + encodeURIComponent(state.entry.id)).then(function () {
      C.toast(t("kb_deleted"));
      state.entry = null;
      $("kb-form").hidden = true;
      return loadEntries();
    }).catch(showError);
  }
  function showError(err) {
    $("kb-error").textContent = t("error") + (err.detail || err) + (err.field ? " (" + err.field + ")" : "");
  }

  /* ---------- hooks into the console ---------- */
  function entered() {
    $("nav-kb").hidden = !F.at("supervisor");
    if (location.hash === "#kb" && F.at("supervisor")) { C.show("kb"); load(); }
  }
  build();
  document.addEventListener("gw:enter", entered);
  document.addEventListener("gw:lang", function () {
    if (document.body.getAttribute("data-view") === "kb") { renderEntries(); renderMisses(); }
  });
  if (C.me()) entered();
})();
