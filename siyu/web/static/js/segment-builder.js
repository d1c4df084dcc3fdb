/*
 * The segment builder: edits a segment definition (docs/segments.md) as a tree of groups and
 * conditions, keeps it as JSON in the form's `definition` field, and shows the live count.
 *
 * - The page hands over the definition, the labels in the user's language and two URLs in
 *   <script id="builder-data">; this file holds no user-facing text of its own.
 * - Pickers are filled from GET catalog_url (fields with their operators, tags, staff, event
 *   types, SKUs…).
 * - Every change is posted (debounced) to preview_url, which answers the count, the count of every
 *   node by path ("$", "$.all[0]", "$.all[1].any[0]", "$.all[2].not"), a sample and the SQL, or an
 *   error with the path of the offending node. Paths here are built exactly as the server builds
 *   them, so counts and errors land on the right node.
 * - Order amounts are typed in yuan and stored in fen (value × 100, rounded).
 */
(function () {
  "use strict";

  var dataNode = document.getElementById("builder-data");
  var mount = document.getElementById("segment-builder");
  if (!dataNode || !mount) return;

  var config = JSON.parse(dataNode.textContent);
  var L = config.labels;
  var textarea = document.getElementById("definition");
  var form = document.getElementById("segment-form");
  var countEl = document.getElementById("live-count");
  var metaEl = document.getElementById("live-meta");
  var errorEl = document.getElementById("preview-error");
  var sampleEl = document.getElementById("preview-sample");
  var sqlEl = document.getElementById("preview-sql-text");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  var FIELD_OP_ORDER = [
    "eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "between",
    "within_last", "more_than_ago", "anniversary_within_next", "is_set", "is_not_set"
  ];
  var PRESENCE = ["is_set", "is_not_set"];
  var RELATIVE = ["within_last", "more_than_ago", "anniversary_within_next"];
  var LISTS = ["in", "not_in"];
  var COUNT_OPS = ["at_least", "at_most", "exactly", "gt", "lt", "ne", "between"];
  var AMOUNT_OPS = ["gt", "gte", "lt", "lte", "eq", "ne", "between"];
  var MOMENT_OPS = ["within_last", "more_than_ago", "before", "after", "between"];
  var PROPERTY_OPS = ["eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set", "is_not_set"];
  var MONEY = ["total_fen", "average_fen"];
  var MOMENT_MEASURES = ["first", "last", "first_paid_at", "last_paid_at"];

  var catalog = null;
  var state = normalize(config.definition);
  var jsonBroken = false;
  var timer = null;
  var sequence = 0;
  var inflight = null;
  var lastCounts = {};

  // --- small DOM helpers -------------------------------------------------------------------

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function select(key, options, current, onChange, extraClass) {
    // options: [[value, label]] or [{group, options: [[value, label]]}]
    var node = h("select", { className: "form-select form-select-sm " + (extraClass || ""), "data-key": key });
    options.forEach(function (option) {
      if (option && option.group !== undefined) {
        var group = h("optgroup", { label: option.group });
        option.options.forEach(function (o) { group.appendChild(optionNode(o, current)); });
        node.appendChild(group);
      } else {
        node.appendChild(optionNode(option, current));
      }
    });
    node.addEventListener("change", function () { onChange(node.value); });
    return node;
  }

  function optionNode(option, current) {
    var value = String(option[0]);
    return h("option", { value: value, selected: current !== undefined && current !== null && String(current) === value, text: option[1] });
  }

  function input(key, type, value, onInput, attrs) {
    var node = h("input", Object.assign({ className: "form-control form-control-sm", type: type, "data-key": key }, attrs || {}));
    node.value = value === null || value === undefined ? "" : String(value);
    node.addEventListener("input", function () { onInput(node.value); });
    return node;
  }

  function unit(text) {
    return h("span", { className: "text-secondary small", text: text });
  }

  function label(group, key) {
    var labels = L[group] || {};
    return labels[key] !== undefined ? labels[key] : String(key);
  }

  function pairs(group, keys) {
    return keys.map(function (k) { return [k, label(group, k)]; });
  }

  function toNumber(text) {
    var trimmed = String(text).trim();
    if (trimmed === "") return null;
    var number = Number(trimmed);
    return isFinite(number) ? number : null;
  }

  function splitList(text) {
    return String(text).split(/[,，、\n]/).map(function (s) { return s.trim(); }).filter(function (s) { return s !== ""; });
  }

  function yuan(fen) {
    return typeof fen === "number" ? String(fen / 100) : "";
  }

  function toFen(text) {
    var number = toNumber(text);
    return number === null ? null : Math.round(number * 100);
  }

  // --- the tree ------------------------------------------------------------------------------

  function isGroup(node) {
    return node !== null && typeof node === "object" && ("all" in node || "any" in node || "not" in node);
  }

  function normalize(definition) {
    if (definition === null || typeof definition !== "object" || Array.isArray(definition)) return { all: [] };
    return isGroup(definition) ? definition : { all: [definition] };
  }

  function isEmptyRoot() {
    var items = "all" in state ? state.all : state.any;
    return Array.isArray(items) && items.length === 0;
  }

  function catalogField(key) {
    return (catalog.fields || []).filter(function (f) { return f.key === key; })[0] || null;
  }

  function fieldLabel(field) {
    return L.fields[field.key] || field.label || field.key;
  }

  function fieldOps(field) {
    return FIELD_OP_ORDER.filter(function (op) { return field.ops.indexOf(op) >= 0; });
  }

  function defaultFieldValue(field, op) {
    if (PRESENCE.indexOf(op) >= 0) return undefined;
    if (RELATIVE.indexOf(op) >= 0) return 30;
    if (LISTS.indexOf(op) >= 0) return [];
    var numeric = ["integer", "number", "staff"].indexOf(field.type) >= 0;
    if (op === "between") return numeric ? [null, null] : ["", ""];
    if (field.type === "enum") return field.choices[0];
    if (field.type === "staff") return catalog.staff.length ? catalog.staff[0].id : null;
    if (field.type === "boolean") return true;
    if (numeric) return null;
    return "";
  }

  function newCondition(kind) {
    switch (kind) {
      case "field": {
        var field = catalog.fields[0];
        var op = fieldOps(field)[0];
        var node = { kind: "field", field: field.key, op: op };
        var value = defaultFieldValue(field, op);
        if (value !== undefined) node.value = value;
        return node;
      }
      case "tag": return { kind: "tag", match: "any", tag_ids: [] };
      case "event":
        return { kind: "event", type: catalog.event_types[0] || "", measure: "count", op: "at_least", value: 1, window: { last_days: 30 } };
      case "order": return { kind: "order", measure: "total_fen", op: "gt", value: 0, window: { last_days: 90 } };
      case "purchase": return { kind: "purchase", skus: [], categories: [], bought: true };
      case "relationship": return { kind: "relationship", status: "active" };
      case "identity": return { kind: "identity", type: "wecom_external_userid", present: true };
      case "consent": return { kind: "consent", channel: catalog.consent_channels[0], status: "granted" };
      case "segment": {
        var others = otherSegments();
        return { kind: "segment", segment_id: others.length ? others[0].id : null, member: true };
      }
      case "sample": return { kind: "sample", percent: 10, seed: "holdout" };
      case "tier": return { kind: "tier", tier_names: [], member: true };
      case "points_balance": return { kind: "points_balance", op: "gte", value: 100 };
      case "points_expiring": return { kind: "points_expiring", within_days: 30, op: "gte", value: 1 };
      case "coupon": return { kind: "coupon", state: "unused", has: true };
      case "first_order": return { kind: "first_order", value: true };
      case "repurchaser": return { kind: "repurchaser", value: true };
      case "super_user": return { kind: "super_user", value: true };
      case "clv_value": return { kind: "clv_value", op: "gte", value: 100000 };
    }
    return { kind: kind };
  }

  function otherSegments() {
    return (catalog.segments || []).filter(function (s) { return s.id !== config.segment_id; });
  }

  // --- changes -------------------------------------------------------------------------------

  function changed(structural) {
    jsonBroken = false;
    if (textarea) textarea.value = JSON.stringify(state);
    if (structural) render();
    schedule();
  }

  function rootSlot() {
    return {
      set: function (node) { state = normalize(node); },
      remove: null
    };
  }

  // --- rendering -----------------------------------------------------------------------------

  function render() {
    var focus = rememberFocus();
    mount.innerHTML = "";
    mount.appendChild(renderNode(state, "$", rootSlot(), 1));
    restoreFocus(focus);
    markStale();
  }

  function rememberFocus() {
    var active = document.activeElement;
    if (!active || !mount.contains(active)) return null;
    var owner = active.closest("[data-path]");
    return owner ? { path: owner.getAttribute("data-path"), key: active.getAttribute("data-key"), role: active.getAttribute("data-role") } : null;
  }

  function restoreFocus(focus) {
    if (!focus) return;
    var owner = mount.querySelector('[data-path="' + focus.path + '"]');
    if (!owner) return;
    var selector = focus.key ? '[data-key="' + focus.key + '"]' : focus.role ? '[data-role="' + focus.role + '"]' : null;
    var target = selector ? ownControls(owner, selector)[0] : null;
    if (target) target.focus();
  }

  function ownControls(owner, selector) {
    return Array.prototype.filter.call(owner.querySelectorAll(selector), function (node) {
      return node.closest("[data-path]") === owner;
    });
  }

  function countBadge(path) {
    return h("span", { className: "badge bg-blue-lt seg-count stale", "data-count-path": path, text: "…" });
  }

  function actionButton(role, text, onClick, extraClass) {
    return h("button", {
      type: "button", className: "btn btn-sm " + (extraClass || "btn-ghost-secondary"), "data-role": role, text: text,
      onclick: function (event) { event.preventDefault(); onClick(); }
    });
  }

  function renderNode(node, path, slot, depth) {
    if (node && typeof node === "object" && "not" in node) return renderNot(node, path, slot, depth);
    if (isGroup(node)) return renderGroup(node, path, slot, depth);
    return renderCondition(node, path, slot);
  }

  function renderGroup(node, path, slot, depth) {
    var combinator = "all" in node ? "all" : "any";
    var items = Array.isArray(node[combinator]) ? node[combinator] : (node[combinator] = []);
    var box = h("div", { className: "seg-node seg-group seg-" + combinator, "data-path": path, "data-node": "group" });
    var kinds = [["", "+ " + L.ui.add_condition]].concat((catalog.kinds || []).map(function (k) { return [k, label("kinds", k)]; }));
    var adder = select("", kinds, "", function (kind) {
      if (!kind) return;
      items.push(newCondition(kind));
      changed(true);
    }, "add-condition");
    adder.removeAttribute("data-key");
    adder.setAttribute("data-role", "add-condition");
    var head = h("div", { className: "seg-head" }, [
      select("combinator", [["all", L.ui.all], ["any", L.ui.any]], combinator, function (value) {
        if (value === combinator) return;
        node[value] = items;
        delete node[combinator];
        changed(true);
      }, "combinator"),
      countBadge(path),
      h("div", { className: "seg-actions" }, [
        adder,
        actionButton("add-group", "+ " + L.ui.add_group, function () {
          items.push(combinator === "all" ? { any: [] } : { all: [] });
          changed(true);
        }, "btn-outline-primary"),
        actionButton("negate", L.ui.negate, function () { slot.set({ not: node }); changed(true); }),
        slot.remove ? actionButton("delete", L.ui.delete, function () { slot.remove(); changed(true); }, "btn-ghost-danger") : null
      ])
    ]);
    box.appendChild(head);
    var children = h("div", { className: "seg-children" });
    if (!items.length) {
      children.appendChild(h("p", { className: "text-secondary small mb-0", text: depth === 1 ? L.ui.empty_root : L.ui.empty_group }));
    }
    items.forEach(function (child, index) {
      var childSlot = {
        set: function (replacement) { items[index] = replacement; },
        remove: function () { items.splice(index, 1); }
      };
      children.appendChild(renderNode(child, path + "." + combinator + "[" + index + "]", childSlot, depth + 1));
    });
    box.appendChild(children);
    return box;
  }

  function renderNot(node, path, slot, depth) {
    var box = h("div", { className: "seg-node seg-not", "data-path": path, "data-node": "not" });
    box.appendChild(h("div", { className: "seg-head" }, [
      h("strong", { text: L.ui.not }),
      countBadge(path),
      h("div", { className: "seg-actions" }, [
        actionButton("unnegate", L.ui.unnegate, function () { slot.set(node.not); changed(true); }),
        slot.remove ? actionButton("delete", L.ui.delete, function () { slot.remove(); changed(true); }, "btn-ghost-danger") : null
      ])
    ]));
    var inner = {
      set: function (replacement) { node.not = replacement; },
      // Deleting the only child of a negation deletes the negation (the root becomes empty).
      remove: function () { if (slot.remove) slot.remove(); else slot.set({ all: [] }); }
    };
    box.appendChild(h("div", { className: "seg-children" }, [renderNode(node.not, path + ".not", inner, depth + 1)]));
    return box;
  }

  function renderCondition(node, path, slot) {
    var kind = node && node.kind;
    var box = h("div", { className: "seg-node seg-cond", "data-path": path, "data-node": "condition", "data-kind": kind || "" });
    var body = h("div", { className: "seg-body" });
    body.appendChild(select("kind", (catalog.kinds || []).map(function (k) { return [k, label("kinds", k)]; }), kind, function (value) {
      slot.set(newCondition(value));
      changed(true);
    }, "kind"));
    var editor = EDITORS[kind];
    (editor ? editor(node) : [h("code", { text: JSON.stringify(node) })]).forEach(function (control) {
      if (control) body.appendChild(control);
    });
    box.appendChild(body);
    // The count and the actions keep their own column, so long editors wrap beside them.
    box.appendChild(h("div", { className: "seg-side" }, [
      countBadge(path),
      actionButton("negate", L.ui.negate, function () { slot.set({ not: node }); changed(true); }),
      actionButton("delete", L.ui.delete, function () { slot.remove(); changed(true); }, "btn-ghost-danger")
    ]));
    return box;
  }

  // --- pickers -------------------------------------------------------------------------------

  /* A list of values shown as removable chips, with a select (fixed options) or a text box with
     suggestions (free values) to add more. `options`: [{value, label, group}]. */
  function chips(key, values, options, onChange, free) {
    var list = Array.isArray(values) ? values.slice() : [];
    var labels = {};
    options.forEach(function (o) { labels[String(o.value)] = o.label; });
    var box = h("span", { className: "seg-chips", "data-key": key });
    list.forEach(function (value, index) {
      box.appendChild(h("span", { className: "badge bg-azure-lt seg-chip", "data-value": String(value) }, [
        labels[String(value)] !== undefined ? labels[String(value)] : String(value),
        h("button", {
          type: "button", className: "btn-close", "aria-label": L.ui.remove,
          onclick: function (event) { event.preventDefault(); list.splice(index, 1); onChange(list); }
        })
      ]));
    });
    if (free) {
      var listId = "dl-" + key + "-" + Math.random().toString(36).slice(2, 8);
      var text = h("input", { className: "form-control form-control-sm", list: listId, placeholder: L.ui.add + "…", "data-role": "chip-input-" + key });
      var datalist = h("datalist", { id: listId }, options.map(function (o) { return h("option", { value: String(o.value) }); }));
      var add = function () {
        var value = text.value.trim();
        if (value && list.indexOf(value) < 0) { list.push(value); onChange(list); }
      };
      text.addEventListener("keydown", function (event) { if (event.key === "Enter") { event.preventDefault(); add(); } });
      box.appendChild(text);
      box.appendChild(datalist);
      box.appendChild(actionButton("chip-add-" + key, L.ui.add, add, "btn-outline-secondary"));
      return box;
    }
    var remaining = options.filter(function (o) { return list.map(String).indexOf(String(o.value)) < 0; });
    var grouped = [];
    var groups = {};
    remaining.forEach(function (o) {
      if (o.group) {
        if (!groups[o.group]) { groups[o.group] = { group: o.group, options: [] }; grouped.push(groups[o.group]); }
        groups[o.group].options.push([o.value, o.label]);
      } else {
        grouped.push([o.value, o.label]);
      }
    });
    var placeholder = [["", options.length ? L.ui.add + "…" : L.ui.no_choices]];
    var picker = select(key, placeholder.concat(grouped), "", function (value) {
      if (value === "") return;
      var option = options.filter(function (o) { return String(o.value) === value; })[0];
      list.push(option ? option.value : value);
      onChange(list);
    }, "chip-select");
    picker.setAttribute("data-role", "chip-select-" + key);
    box.appendChild(picker);
    return box;
  }

  function windowEditor(node, key) {
    key = key || "window";
    var current = node[key];
    var mode = !current ? "none" : "last_days" in current ? "last" : "range";
    var controls = [unit(L.ui.window), select(key, [["none", L.ui.window_none], ["last", L.ui.window_last], ["range", L.ui.window_range]], mode, function (value) {
      if (value === "none") delete node[key];
      else if (value === "last") node[key] = { last_days: 30 };
      else node[key] = {};
      changed(true);
    })];
    if (mode === "last") {
      controls.push(input(key + ".last_days", "number", current.last_days, function (text) {
        current.last_days = toNumber(text);
        changed(false);
      }, { min: 1, max: 3660, step: 1 }), unit(L.ui.days));
    } else if (mode === "range") {
      ["from", "to"].forEach(function (end) {
        controls.push(unit(L.ui[end]), input(key + "." + end, "date", current[end], function (text) {
          if (text) current[end] = text; else delete current[end];
          changed(false);
        }));
      });
    }
    return controls;
  }

  function scalarInput(key, type, value, onValue, field) {
    if (type === "enum") {
      return select(key, field.choices.map(function (c) { return [c, label("choices", c)]; }), value, onValue);
    }
    if (type === "staff") {
      return select(key, [["", L.ui.choose]].concat(catalog.staff.map(function (s) { return [s.id, s.name]; })), value, function (v) {
        onValue(v === "" ? null : Number(v));
      });
    }
    if (type === "boolean") {
      return select(key, [["true", L.ui.yes], ["false", L.ui.no]], String(value), function (v) { onValue(v === "true"); });
    }
    if (type === "date" || type === "datetime") return input(key, "date", value, onValue);
    if (type === "integer" || type === "number") {
      return input(key, "number", value, function (text) { onValue(toNumber(text)); }, { step: type === "integer" ? 1 : "any" });
    }
    return input(key, "text", value, onValue, { placeholder: L.ui.value });
  }

  /* The value of a count or amount comparison (money in yuan), or of a moment (dates or days). */
  function comparisonValue(node, moment, money) {
    var parse = money ? toFen : toNumber;
    var show = money ? yuan : function (v) { return v; };
    if (node.op === "between") {
      var pair = Array.isArray(node.value) ? node.value : (node.value = [null, null]);
      var type = moment ? "date" : "number";
      var controls = [];
      [0, 1].forEach(function (i) {
        if (i === 1) controls.push(unit(L.ui.and));
        controls.push(input("value[" + i + "]", type, moment ? pair[i] : show(pair[i]), function (text) {
          pair[i] = moment ? text : parse(text);
          changed(false);
        }, moment ? {} : { step: "any" }));
      });
      if (money) controls.push(unit(L.ui.yuan));
      return controls;
    }
    if (moment && (node.op === "before" || node.op === "after")) {
      return [input("value", "date", node.value, function (text) { node.value = text; changed(false); })];
    }
    var days = moment && (node.op === "within_last" || node.op === "more_than_ago");
    var suffix = days ? L.ui.days : money ? L.ui.yuan : node.kind === "event" ? L.ui.times : null;
    return [
      input("value", "number", money ? yuan(node.value) : node.value, function (text) {
        node.value = parse(text);
        changed(false);
      }, { step: money ? "0.01" : 1 }),
      suffix ? unit(suffix) : null
    ];
  }

  function resetComparison(node, moment) {
    if (moment) { node.op = "within_last"; node.value = 30; } else { node.op = node.kind === "event" ? "at_least" : "gt"; node.value = node.kind === "event" ? 1 : 0; }
  }

  // --- one editor per condition kind -----------------------------------------------------------

  var EDITORS = {
    field: function (node) {
      var field = catalogField(node.field);
      var profile = catalog.fields.filter(function (f) { return f.key.indexOf("attributes.") !== 0; });
      var custom = catalog.fields.filter(function (f) { return f.key.indexOf("attributes.") === 0; });
      var groups = [{ group: L.ui.profile_fields, options: profile.map(function (f) { return [f.key, fieldLabel(f)]; }) }];
      if (custom.length) groups.push({ group: L.ui.custom_fields, options: custom.map(function (f) { return [f.key, fieldLabel(f)]; }) });
      if (!field) groups.unshift([node.field, String(node.field)]);
      var controls = [select("field", groups, node.field, function (key) {
        var next = catalogField(key);
        node.field = key;
        if (next.ops.indexOf(node.op) < 0) node.op = fieldOps(next)[0];
        var value = defaultFieldValue(next, node.op);
        if (value === undefined) delete node.value; else node.value = value;
        changed(true);
      })];
      if (!field) return controls.concat([unit(node.op), node.value === undefined ? null : unit(JSON.stringify(node.value))]);
      var ops = fieldOps(field);
      if (ops.indexOf(node.op) < 0) ops = [node.op].concat(ops);
      controls.push(select("op", pairs("ops", ops), node.op, function (op) {
        var before = node.op;
        node.op = op;
        var keepScalar = PRESENCE.indexOf(op) < 0 && LISTS.indexOf(op) < 0 && RELATIVE.indexOf(op) < 0 && op !== "between" &&
          PRESENCE.indexOf(before) < 0 && LISTS.indexOf(before) < 0 && RELATIVE.indexOf(before) < 0 && before !== "between";
        if (!keepScalar) {
          var value = defaultFieldValue(field, op);
          if (value === undefined) delete node.value; else node.value = value;
        }
        changed(true);
      }));
      var set = function (value) { node.value = value; changed(false); };
      if (PRESENCE.indexOf(node.op) >= 0) return controls;
      if (RELATIVE.indexOf(node.op) >= 0) {
        return controls.concat([input("value", "number", node.value, function (text) { set(toNumber(text)); }, { min: 0, max: 3660, step: 1 }), unit(L.ui.days)]);
      }
      if (LISTS.indexOf(node.op) >= 0) {
        if (field.type === "enum") {
          return controls.concat([chips("value", node.value, field.choices.map(function (c) { return { value: c, label: label("choices", c) }; }), function (list) { node.value = list; changed(true); })]);
        }
        if (field.type === "staff") {
          return controls.concat([chips("value", node.value, catalog.staff.map(function (s) { return { value: s.id, label: s.name }; }), function (list) { node.value = list; changed(true); })]);
        }
        var numeric = field.type === "integer" || field.type === "number";
        var text = Array.isArray(node.value) ? node.value.join(", ") : "";
        return controls.concat([input("value", "text", text, function (raw) {
          var items = splitList(raw);
          set(numeric ? items.map(toNumber) : items);
        }, { placeholder: L.ui.list_hint })]);
      }
      if (node.op === "between") {
        var pair = Array.isArray(node.value) ? node.value : (node.value = [null, null]);
        return controls.concat([
          scalarInput("value[0]", field.type, pair[0], function (v) { pair[0] = v; changed(false); }, field),
          unit(L.ui.and),
          scalarInput("value[1]", field.type, pair[1], function (v) { pair[1] = v; changed(false); }, field)
        ]);
      }
      return controls.concat([scalarInput("value", field.type, node.value, set, field)]);
    },

    tag: function (node) {
      return [
        select("match", pairs("tag_match", ["any", "all", "none"]), node.match || "any", function (v) { node.match = v; changed(false); }),
        chips("tag_ids", node.tag_ids, catalog.tags.map(function (t) { return { value: t.id, label: t.name, group: t.group }; }), function (list) {
          node.tag_ids = list;
          changed(true);
        })
      ];
    },

    event: function (node) {
      var measure = node.measure || "count";
      var moment = measure !== "count";
      var listId = "dl-event-types-" + Math.random().toString(36).slice(2, 8);
      var type = input("type", "text", node.type, function (text) { node.type = text.trim(); changed(false); }, { list: listId, placeholder: L.ui.event_type });
      var controls = [
        type,
        h("datalist", { id: listId }, (catalog.event_types || []).map(function (t) { return h("option", { value: t }); })),
        select("measure", pairs("event_measures", ["count", "first", "last"]), measure, function (v) {
          node.measure = v;
          resetComparison(node, v !== "count");
          changed(true);
        }),
        select("op", pairs("ops", moment ? MOMENT_OPS : COUNT_OPS), node.op, function (op) {
          node.op = op;
          if (op === "between") node.value = moment ? ["", ""] : [null, null];
          else if (moment && (op === "before" || op === "after")) node.value = "";
          else if (Array.isArray(node.value) || typeof node.value === "string") node.value = moment ? 30 : 1;
          changed(true);
        })
      ].concat(comparisonValue(node, moment, false), windowEditor(node));
      var where = Array.isArray(node.where) ? node.where : [];
      var rows = h("div", { className: "seg-where" });
      where.forEach(function (filter, index) { rows.appendChild(propertyRow(node, where, filter, index)); });
      rows.appendChild(h("div", {}, [actionButton("add-where", "+ " + L.ui.add_where, function () {
        where.push({ property: "", op: "eq", value: "" });
        node.where = where;
        changed(true);
      })]));
      controls.push(rows);
      return controls;
    },

    order: function (node) {
      var measure = node.measure || "count";
      var moment = MOMENT_MEASURES.indexOf(measure) >= 0;
      var money = MONEY.indexOf(measure) >= 0;
      return [
        select("measure", pairs("order_measures", ["count", "total_fen", "average_fen", "first_paid_at", "last_paid_at"]), measure, function (v) {
          var wasMoment = moment;
          node.measure = v;
          if (MOMENT_MEASURES.indexOf(v) >= 0 !== wasMoment || MONEY.indexOf(v) >= 0 !== money) resetComparison(node, MOMENT_MEASURES.indexOf(v) >= 0);
          changed(true);
        }),
        select("op", pairs("ops", moment ? MOMENT_OPS : AMOUNT_OPS), node.op, function (op) {
          node.op = op;
          if (op === "between") node.value = moment ? ["", ""] : [null, null];
          else if (moment && (op === "before" || op === "after")) node.value = "";
          else if (Array.isArray(node.value) || typeof node.value === "string") node.value = moment ? 30 : 0;
          changed(true);
        })
      ].concat(comparisonValue(node, moment, money), money ? [unit("(" + L.ui.fen_note + ")")] : [], windowEditor(node), [
        unit(L.ui.platforms),
        chips("platforms", node.platforms, (catalog.platforms || []).map(function (p) { return { value: p, label: p }; }), function (list) {
          if (list.length) node.platforms = list; else delete node.platforms;
          changed(true);
        }, true)
      ]);
    },

    purchase: function (node) {
      var strings = function (list) { return list.map(function (v) { return { value: v, label: v }; }); };
      return [
        select("bought", pairs("bought", ["true", "false"]), String(node.bought !== false), function (v) { node.bought = v === "true"; changed(false); }),
        unit(L.ui.skus),
        chips("skus", node.skus, strings(catalog.skus || []), function (list) { node.skus = list; changed(true); }, true),
        unit(L.ui.categories),
        chips("categories", node.categories, strings(catalog.categories || []), function (list) { node.categories = list; changed(true); }, true)
      ].concat(windowEditor(node));
    },

    relationship: function (node) {
      var status = node.status || "active";
      var controls = [select("status", pairs("relationship_status", ["active", "removed", "any"]), status, function (v) {
        node.status = v;
        if (v === "active") delete node.removed_by;
        changed(true);
      })];
      if (status !== "active") {
        controls.push(select("removed_by", pairs("removed_by", ["", "customer", "staff"]), node.removed_by || "", function (v) {
          if (v) node.removed_by = v; else delete node.removed_by;
          changed(false);
        }));
      }
      controls.push(unit(L.ui.staff), chips("staff_ids", node.staff_ids, catalog.staff.map(function (s) { return { value: s.id, label: s.name }; }), function (list) {
        if (list.length) node.staff_ids = list; else delete node.staff_ids;
        changed(true);
      }));
      if (!node.staff_ids) controls.push(unit("(" + L.ui.any_staff + ")"));
      controls.push(unit(L.ui.channels), chips("channel_ids", node.channel_ids, catalog.channels.map(function (c) { return { value: c.id, label: c.name }; }), function (list) {
        if (list.length) node.channel_ids = list; else delete node.channel_ids;
        changed(true);
      }));
      if (!node.channel_ids) controls.push(unit("(" + L.ui.any_channel + ")"));
      return controls.concat(windowEditor(node));
    },

    identity: function (node) {
      return [
        select("present", pairs("present", ["true", "false"]), String(node.present !== false), function (v) { node.present = v === "true"; changed(false); }),
        select("type", catalog.identity_types.map(function (t) { return [t, label("identity_types", t)]; }), node.type, function (v) { node.type = v; changed(false); })
      ];
    },

    consent: function (node) {
      return [
        select("channel", catalog.consent_channels.map(function (c) { return [c, label("consent_channels", c)]; }), node.channel, function (v) { node.channel = v; changed(false); }),
        select("status", pairs("consent_status", ["granted", "unsubscribed"]), node.status || "granted", function (v) { node.status = v; changed(false); })
      ];
    },

    segment: function (node) {
      var options = [["", L.ui.choose]].concat(otherSegments().map(function (s) { return [s.id, s.name]; }));
      return [
        select("member", pairs("member", ["true", "false"]), String(node.member !== false), function (v) { node.member = v === "true"; changed(false); }),
        select("segment_id", options, node.segment_id, function (v) { node.segment_id = v === "" ? null : Number(v); changed(false); })
      ];
    },

    tier: function (node) {
      return [
        select("member", pairs("tier_member", ["true", "false"]), String(node.member !== false), function (v) { node.member = v === "true"; changed(false); }),
        chips("tier_names", node.tier_names, [], function (list) { node.tier_names = list; changed(true); }, true)
      ];
    },

    points_balance: function (node) { return pointsComparison(node); },

    points_expiring: function (node) {
      return [
        input("within_days", "number", node.within_days, function (text) { node.within_days = toNumber(text); changed(false); }, { min: 1, step: 1 }),
        unit(L.ui.days)
      ].concat(pointsComparison(node));
    },

    coupon: function (node) {
      return [
        select("has", pairs("present", ["true", "false"]), String(node.has !== false), function (v) { node.has = v === "true"; changed(false); }),
        select("state", pairs("coupon_states", ["unused", "redeemed", "any"]), node.state || "unused", function (v) { node.state = v; changed(false); })
      ];
    },

    first_order: function (node) { return [flagSelect(node)]; },

    repurchaser: function (node) { return [flagSelect(node)]; },

    super_user: function (node) { return [flagSelect(node)]; },

    clv_value: function (node) { return pointsComparison(node); },

    sample: function (node) {
      return [
        input("percent", "number", node.percent, function (text) { node.percent = toNumber(text); changed(false); }, { min: 0.01, max: 100, step: "0.01" }),
        unit(L.ui.percent),
        unit(L.ui.seed),
        input("seed", "text", node.seed, function (text) { node.seed = text; changed(false); })
      ];
    }
  };

  function pointsComparison(node) {
    return [
      select("op", pairs("ops", ["gte", "gt", "lte", "lt", "eq"]), node.op, function (op) { node.op = op; changed(false); }),
      input("value", "number", node.value, function (text) { node.value = toNumber(text); changed(false); }, { min: 0, step: 1 })
    ];
  }

  function flagSelect(node) {
    return select("value", pairs("flag_value", ["true", "false"]), String(node.value !== false), function (v) { node.value = v === "true"; changed(false); });
  }

  function propertyRow(node, where, filter, index) {
    var prefix = "where[" + index + "].";
    var typeOf = typeof filter.value === "number" ? "number" : typeof filter.value === "boolean" ? "boolean" : "text";
    var presence = PRESENCE.indexOf(filter.op) >= 0;
    var list = LISTS.indexOf(filter.op) >= 0;
    var convert = function (text) {
      if (typeOf === "number") return toNumber(text);
      if (typeOf === "boolean") return text === "true";
      return text;
    };
    var row = h("div", {}, [
      unit(L.ui.where),
      input(prefix + "property", "text", filter.property, function (text) { filter.property = text.trim(); changed(false); }, { placeholder: L.ui.property }),
      select(prefix + "op", pairs("ops", PROPERTY_OPS), filter.op, function (op) {
        filter.op = op;
        if (PRESENCE.indexOf(op) >= 0) delete filter.value;
        else if (LISTS.indexOf(op) >= 0) filter.value = Array.isArray(filter.value) ? filter.value : [];
        else if (Array.isArray(filter.value) || filter.value === undefined) filter.value = "";
        changed(true);
      })
    ]);
    if (!presence) {
      row.appendChild(select(prefix + "type", [["text", L.ui.text], ["number", L.ui.number], ["boolean", L.ui.boolean]], typeOf, function (type) {
        typeOf = type;
        filter.value = list ? [] : type === "number" ? null : type === "boolean" ? true : "";
        changed(true);
      }));
      if (typeOf === "boolean" && !list) {
        row.appendChild(select(prefix + "value", [["true", L.ui.yes], ["false", L.ui.no]], String(filter.value), function (v) { filter.value = v === "true"; changed(false); }));
      } else {
        var shown = Array.isArray(filter.value) ? filter.value.join(", ") : filter.value;
        row.appendChild(input(prefix + "value", typeOf === "number" && !list ? "number" : "text", shown, function (text) {
          filter.value = list ? splitList(text).map(convert) : convert(text);
          changed(false);
        }, { placeholder: list ? L.ui.list_hint : L.ui.value }));
      }
    }
    row.appendChild(actionButton("remove-where", L.ui.remove, function () {
      where.splice(index, 1);
      if (!where.length) delete node.where;
      changed(true);
    }, "btn-ghost-danger"));
    return row;
  }

  // --- preview -------------------------------------------------------------------------------

  function markStale() {
    Array.prototype.forEach.call(mount.querySelectorAll(".seg-count"), function (badge) { badge.classList.add("stale"); });
  }

  function schedule() {
    clearTimeout(timer);
    markStale();
    timer = setTimeout(runPreview, 300);
  }

  function runPreview() {
    if (jsonBroken) return;
    if (isEmptyRoot()) {
      sequence += 1;
      showEmpty();
      return;
    }
    var mine = ++sequence;
    if (inflight) inflight.abort();
    inflight = typeof AbortController === "function" ? new AbortController() : null;
    if (metaEl) metaEl.textContent = L.ui.loading;
    fetch(config.preview_url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ definition: state, segment_id: config.segment_id }),
      signal: inflight ? inflight.signal : undefined
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; }, function () {
        return { status: response.status, body: null };
      });
    }).then(function (answer) {
      if (mine !== sequence) return;
      if (answer.status === 200 && answer.body && typeof answer.body.count === "number") showResult(answer.body);
      else if (answer.body && answer.body.error) showError(answer.body.error);
      else showError({ message: L.ui.preview_failed + " (HTTP " + answer.status + ")", path: null });
    }).catch(function (error) {
      if (error && error.name === "AbortError") return;
      if (mine === sequence) showError({ message: L.ui.preview_failed, path: null });
    });
  }

  function setCount(value) {
    if (!countEl) return;
    countEl.textContent = value === null ? "—" : value.toLocaleString("zh-CN");
    countEl.setAttribute("data-count", value === null ? "" : String(value));
  }

  function clearError() {
    if (errorEl) { errorEl.classList.add("d-none"); errorEl.textContent = ""; }
    Array.prototype.forEach.call(mount.querySelectorAll(".seg-error"), function (node) { node.classList.remove("seg-error"); });
    Array.prototype.forEach.call(mount.querySelectorAll(".seg-error-msg"), function (node) { node.remove(); });
    Array.prototype.forEach.call(mount.querySelectorAll(".is-invalid"), function (node) { node.classList.remove("is-invalid"); });
  }

  function showEmpty() {
    clearError();
    setCount(null);
    if (metaEl) metaEl.textContent = L.ui.empty_root;
    if (sampleEl) sampleEl.innerHTML = "";
    if (sqlEl) sqlEl.textContent = "";
    lastCounts = {};
    paintCounts();
  }

  function showResult(result) {
    clearError();
    setCount(result.count);
    if (metaEl) metaEl.textContent = result.elapsed_ms + " ms";
    lastCounts = result.node_counts || {};
    paintCounts();
    if (sampleEl) {
      sampleEl.innerHTML = "";
      result.sample.forEach(function (member) {
        sampleEl.appendChild(h("li", { "data-customer-id": member.id }, [
          h("a", { href: "/customers/" + member.id, text: member.name || "#" + member.id }),
          h("span", { className: "text-secondary small ms-1", text: "#" + member.id })
        ]));
      });
    }
    if (sqlEl) sqlEl.textContent = result.sql || "";
  }

  function paintCounts() {
    Array.prototype.forEach.call(mount.querySelectorAll(".seg-count"), function (badge) {
      var path = badge.getAttribute("data-count-path");
      var known = Object.prototype.hasOwnProperty.call(lastCounts, path);
      badge.textContent = known ? lastCounts[path].toLocaleString("zh-CN") + " " + L.ui.people : "…";
      badge.setAttribute("data-count", known ? String(lastCounts[path]) : "");
      badge.classList.toggle("stale", !known);
    });
  }

  function showError(error) {
    clearError();
    setCount(null);
    if (metaEl) metaEl.textContent = "";
    lastCounts = {};
    paintCounts();
    if (errorEl) {
      errorEl.textContent = error.message || L.ui.preview_failed;
      errorEl.classList.remove("d-none");
    }
    highlight(error.path, error.message);
  }

  /* Mark the deepest node whose path begins the error's path, and the control the rest names. */
  function highlight(path, message) {
    if (!path) return;
    var best = null;
    Array.prototype.forEach.call(mount.querySelectorAll("[data-path]"), function (node) {
      var own = node.getAttribute("data-path");
      var fits = path === own || path.indexOf(own + ".") === 0 || path.indexOf(own + "[") === 0;
      if (fits && (!best || own.length > best.getAttribute("data-path").length)) best = node;
    });
    if (!best) return;
    best.classList.add("seg-error");
    var rest = path.slice(best.getAttribute("data-path").length).replace(/^\./, "");
    while (rest) {
      var controls = ownControls(best, '[data-key="' + rest + '"]');
      if (controls.length) {
        controls.forEach(function (control) { control.classList.add("is-invalid"); });
        break;
      }
      var shorter = rest.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
      if (shorter === rest) break;
      rest = shorter;
    }
    var host = best.querySelector(":scope > .seg-head, :scope > .seg-body");
    (host || best).appendChild(h("div", { className: "seg-error-msg", text: message || "" }));
    if (typeof best.scrollIntoView === "function" && !isVisible(best)) best.scrollIntoView({ block: "center" });
  }

  function isVisible(node) {
    var box = node.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= (window.innerHeight || document.documentElement.clientHeight);
  }

  // --- wiring --------------------------------------------------------------------------------

  // Enter in a builder input must not submit the form half-way through an edit.
  mount.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target && event.target.tagName === "INPUT") event.preventDefault();
  });

  if (textarea) {
    textarea.addEventListener("input", function () {
      try {
        state = normalize(JSON.parse(textarea.value));
        jsonBroken = false;
        render();
        schedule();
      } catch (error) {
        jsonBroken = true;
        showError({ message: L.ui.invalid_json + ": " + error.message, path: null });
      }
    });
  }

  if (form && textarea) {
    form.addEventListener("submit", function () {
      if (!jsonBroken) textarea.value = JSON.stringify(state);
    });
  }

  fetch(config.catalog_url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(function (data) {
      catalog = data;
      render();
      if (textarea) {
        // A form sent back with JSON that does not parse keeps the text, so it can be fixed.
        try {
          JSON.parse(textarea.value);
          textarea.value = JSON.stringify(state);
        } catch (error) {
          jsonBroken = true;
        }
      }
      if (config.error_path) highlight(config.error_path, config.error);
      if (jsonBroken) showError({ message: config.error || L.ui.invalid_json, path: "$" });
      else runPreview();
    })
    .catch(function (error) {
      mount.innerHTML = "";
      mount.appendChild(h("div", { className: "alert alert-danger", text: L.ui.preview_failed + ": " + error.message }));
    });
})();
