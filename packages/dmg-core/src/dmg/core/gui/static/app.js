// dmg config editor: a form generated from the run config JSON Schema, editing one YAML document.
//
// The loaded mapping is the document: a field writes its own key into it (an emptied field removes
// the key, so the default applies) and nothing else changes, so saving an untouched file gives back
// every value in its order. Structural edits (a component switched, an entry added or removed)
// redraw the form from the document; typing in a field does not.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const state = { schema: null, defs: {}, metrics: [], doc: {}, floats: [], timer: null, sequence: 0 };
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ server

// One API call: {status, data}; a server that does not answer gives status 0 and an error.
async function api(action, body) {
  try {
    const response = await fetch(`/api/${action}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "X-Dmg-Token": TOKEN, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, data: await response.json() };
  } catch (error) {
    return { status: 0, data: { ok: false, error: `no answer from the server (is dmg gui still running?): ${error}` } };
  }
}

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = kind || "";
}

// ------------------------------------------------------------------ the document

function getAt(path) {
  let node = state.doc;
  for (const part of path) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function setAt(path, value) {
  let node = state.doc;
  path.slice(0, -1).forEach((part) => {
    if (node[part] === null || typeof node[part] !== "object") node[part] = {};
    node = node[part];
  });
  node[path[path.length - 1]] = value;
}

// Remove a key; sections left empty by it are removed too.
function deleteAt(path) {
  for (let depth = path.length; depth > 0; depth -= 1) {
    const parent = depth === 1 ? state.doc : getAt(path.slice(0, depth - 1));
    if (parent === undefined || parent === null || typeof parent !== "object") return;
    if (Array.isArray(parent)) return;
    delete parent[path[depth - 1]];
    if (depth === 1 || Object.keys(parent).length > 0) return;
  }
}

function changed(structural) {
  if (structural) render();
  clearTimeout(state.timer);
  state.timer = setTimeout(validate, 300);
}

// ------------------------------------------------------------------ schema

function deref(schema) {
  if (schema && schema.$ref) return state.defs[schema.$ref.split("/").pop()];
  if (schema && schema.allOf && schema.allOf.length === 1) return deref(schema.allOf[0]);
  return schema || {};
}

// The registered components of a slot: [{name, schema}], or null if the schema is no component slot.
function components(schema) {
  if (!schema || !schema.discriminator || !schema.oneOf) return null;
  return schema.oneOf.map((option) => {
    const resolved = deref(option);
    return { name: resolved.properties.name.const, schema: resolved };
  });
}

// What a field edits: {kind, schema, nullable} with kind one of component, components, networks,
// section, list, mapping, entries, members, enum, bool, int, number, date, string, free.
function classify(raw, key) {
  let schema = deref(raw);
  let nullable = false;
  if (schema.anyOf) {
    const options = schema.anyOf.filter((option) => option.type !== "null");
    nullable = options.length < schema.anyOf.length;
    if (options.length === 2 && components(options[0]) && options[1].additionalProperties) {
      return { kind: "networks", schema: options[0], nullable };
    }
    if (options.length !== 1) return { kind: "free", schema, nullable };
    schema = { ...schema, ...deref(options[0]) };
    delete schema.anyOf;
  }
  if (key === "evaluate.metrics") return { kind: "list", schema, nullable, choices: state.metrics };
  if (components(schema)) return { kind: "component", schema, nullable };
  if (schema.enum) return { kind: "enum", schema, nullable };
  if (schema.type === "object" || schema.properties) {
    if (schema.properties) return { kind: "section", schema, nullable };
    const values = schema.additionalProperties;
    if (values && components(values)) return { kind: "members", schema: values, nullable };
    if (key.endsWith(".members")) return { kind: "members", schema: physicsSlot(), nullable };
    if (values && ["string", "number", "integer"].includes(values.type)) return { kind: "mapping", schema, nullable };
    return { kind: "entries", schema, nullable };
  }
  if (schema.type === "array") {
    const items = deref(schema.items);
    if (components(items)) return { kind: "components", schema: items, nullable };
    if (["string", "number", "integer"].includes(items.type)) {
      return { kind: "list", schema, nullable, choices: items.enum };
    }
    return { kind: "free", schema, nullable };
  }
  if (schema.type === "boolean") return { kind: "bool", schema, nullable };
  if (schema.type === "integer") return { kind: "int", schema, nullable };
  if (schema.type === "number") return { kind: "number", schema, nullable };
  if (schema.type === "string" && schema.format === "date") return { kind: "date", schema, nullable };
  if (schema.type === "string") return { kind: "string", schema, nullable };
  return { kind: "free", schema, nullable };
}

function physicsSlot() {
  return state.defs.ModelConfig.properties.physics;
}

// "integer, >= 1", "number, > 0 and < 1", ...
function typeText(info) {
  const s = info.schema;
  const bounds = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
  const names = { int: "integer", bool: "true/false", enum: "one of", free: "YAML/JSON value",
    entries: "mapping", mapping: "mapping", members: "mapping of components", networks: "network(s)" };
  let text = names[info.kind] || info.kind;
  if (info.kind === "list" && s.items && s.items.type) text = `list of ${s.items.type}`;
  if (bounds.length) text += `, ${bounds.join(" and ")}`;
  if (info.nullable) text += ", or null";
  return text;
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// ------------------------------------------------------------------ building blocks

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(([name, value]) => {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  });
  children.filter(Boolean).forEach((child) => node.append(child));
  return node;
}

function button(text, title, action) {
  return element("button", { type: "button", class: "small", title, text, onclick: action });
}

// A labelled row: name, type, control, description and default, and a place for its errors.
function field(path, info, control) {
  const key = path.join(".");
  const s = info.schema;
  const help = [s.description, s.default !== undefined && s.default !== null ? `default: ${show(s.default)}` : ""];
  return element(
    "div", { class: "field", "data-key": key },
    element("label", { for: `f-${key}`, text: String(path[path.length - 1]) },
      element("span", { class: "type", text: typeText(info) })),
    element("div", { class: "control" }, control),
    element("div", { class: "help", text: help.filter(Boolean).join(" — ") }),
    element("div", { class: "error" }),
  );
}

// What a typed text means for a field: undefined (unset), null, a number or the text itself.
function parse(text, info) {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (info.nullable && (trimmed === "null" || trimmed === "none")) return null;
  if ((info.kind === "int" || info.kind === "number") && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) {
    return Number(trimmed);
  }
  return info.kind === "string" || info.kind === "date" ? text : trimmed;
}

function store(path, value, structural) {
  if (value === undefined) deleteAt(path);
  else setAt(path, value);
  changed(structural);
}

// ------------------------------------------------------------------ controls by kind

function scalarControl(path, info) {
  const key = path.join(".");
  const value = getAt(path);
  if (info.kind === "enum" || info.kind === "bool") {
    const choices = info.kind === "bool" ? [true, false] : info.schema.enum;
    const options = [element("option", { value: "", text: `(default${info.schema.default !== undefined ? ": " + show(info.schema.default) : ""})` })];
    if (info.nullable) options.push(element("option", { value: "null", text: "null" }));
    choices.forEach((choice) => options.push(element("option", { value: JSON.stringify(choice), text: show(choice) })));
    if (value !== undefined && value !== null && !choices.includes(value)) {
      options.push(element("option", { value: JSON.stringify(value), text: show(value) }));
    }
    const select = element("select", { id: `f-${key}`, name: key }, ...options);
    select.value = value === undefined ? "" : JSON.stringify(value);
    select.addEventListener("change", () => store(path, select.value === "" ? undefined : JSON.parse(select.value)));
    return select;
  }
  const placeholder = info.kind === "date" ? "YYYY-MM-DD" : info.schema.default !== undefined ? show(info.schema.default) : "";
  const input = element("input", {
    id: `f-${key}`, name: key, type: "text", spellcheck: "false", placeholder: placeholder ?? "",
    class: info.kind === "int" || info.kind === "number" ? "number" : "",
  });
  input.value = value === undefined ? "" : value === null ? "null" : show(value);
  input.addEventListener("input", () => store(path, parse(input.value, info)));
  return input;
}

// A value of any shape, typed as JSON (or as plain text).
function freeControl(path, onValue) {
  const value = getAt(path);
  const input = element("input", { id: `f-${path.join(".")}`, name: path.join("."), type: "text", spellcheck: "false" });
  input.value = value === undefined ? "" : JSON.stringify(value);
  input.addEventListener("input", () => onValue(readFree(input.value)));
  return input;
}

function readFree(text) {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text.trim();
  }
}

function listControl(path, info) {
  const value = getAt(path);
  const items = Array.isArray(value) ? value : [];
  const itemType = deref(info.schema.items || {}).type;
  const write = () => store(path, items.slice(), false);
  const box = element("div", { class: "items" });
  items.forEach((item, index) => {
    let input;
    if (info.choices) {
      input = element("select", {}, ...info.choices.map((c) => element("option", { value: c, text: c })));
      if (!info.choices.includes(item)) input.append(element("option", { value: item, text: item }));
      input.value = item;
      input.addEventListener("change", () => { items[index] = input.value; write(); });
    } else {
      input = element("input", { type: "text", spellcheck: "false" });
      input.value = show(item);
      input.addEventListener("input", () => {
        const number = itemType === "string" ? undefined : parse(input.value, { kind: "number" });
        items[index] = typeof number === "number" ? number : input.value;
        write();
      });
    }
    input.setAttribute("aria-label", `${path.join(".")} item ${index + 1}`);
    const remove = button("×", "remove this entry", () => { items.splice(index, 1); store(path, items.slice(), true); });
    box.append(element("span", { class: "item" }, input, remove));
  });
  box.append(button("+ add", "add an entry", () => {
    items.push(info.choices ? info.choices[0] : "");
    store(path, items.slice(), true);
  }));
  if (value === null) box.append(element("span", { class: "help", text: " (null)" }));
  return box;
}

// A mapping edited row by row; each change rebuilds it in row order (a renamed key keeps its place).
function mappingControl(path, valueControl) {
  const value = getAt(path);
  const entries = value && typeof value === "object" ? Object.entries(value) : [];
  const write = (structural) => store(path, Object.fromEntries(entries.filter(([name]) => name !== "")), structural);
  const rows = element("div", { class: "rows" });
  entries.forEach((entry, index) => {
    const key = element("input", { class: "key", type: "text", spellcheck: "false", "aria-label": `${path.join(".")} key ${index + 1}` });
    key.value = entry[0];
    key.addEventListener("change", () => { entry[0] = key.value.trim(); write(true); });
    const remove = button("×", "remove this entry", () => { entries.splice(index, 1); write(true); });
    rows.append(element("div", { class: "row" }, key, valueControl(entry, () => write(false), index), remove));
  });
  rows.append(element("div", {}, button("+ add", "add an entry", () => {
    let name = "new";
    for (let n = 2; entries.some(([k]) => k === name); n += 1) name = `new${n}`;
    entries.push([name, valueControl.empty]);
    write(true);
  })));
  return rows;
}

function textValue(entry, write) {
  const input = element("input", { class: "value", type: "text", spellcheck: "false" });
  input.value = show(entry[1]);
  input.addEventListener("input", () => { entry[1] = input.value; write(); });
  return input;
}
textValue.empty = "";

function jsonValue(entry, write) {
  const input = element("input", { class: "value", type: "text", spellcheck: "false", title: "a YAML/JSON value: 3, 0.5, true, \"text\", [1, 2]" });
  input.value = JSON.stringify(entry[1]);
  input.addEventListener("input", () => { entry[1] = readFree(input.value) ?? null; write(); });
  return input;
}
jsonValue.empty = null;

// A registered component: a drop-down of the installed ones, then the chosen one's own options.
function componentBlock(path, slot, title, nullable) {
  const key = path.join(".");
  const choices = components(slot);
  const value = getAt(path);
  const chosen = value && typeof value === "object" ? choices.find((c) => c.name === value.name) : undefined;
  const select = element("select", { id: `f-${key}.name`, name: `${key}.name` },
    element("option", { value: "", text: value === undefined ? "(default)" : "(choose)" }),
    ...choices.map((c) => element("option", { value: c.name, text: c.name })));
  if (value && value.name && !chosen) select.append(element("option", { value: value.name, text: `${value.name} (not installed)` }));
  select.value = value && value.name ? value.name : "";
  select.addEventListener("change", () => store(path, select.value ? { name: select.value } : undefined, true));
  const box = element("fieldset", { class: "component", "data-key": key },
    element("legend", { text: title }),
    element("div", { class: "field choose", "data-key": `${key}.name` },
      element("label", { for: `f-${key}.name`, text: "name" }, element("span", { class: "type", text: "installed component" })),
      element("div", { class: "control" }, select),
      element("div", { class: "help", text: slot.description || "" }),
      element("div", { class: "error" })),
    element("div", { class: "error" }));
  if (chosen) {
    Object.entries(chosen.schema.properties).forEach(([name, schema]) => {
      if (name !== "name") box.append(renderProperty([...path, name], schema));
    });
  }
  if (nullable && value === null) box.append(element("div", { class: "help", text: "null" }));
  return box;
}

function sectionBlock(path, schema, title) {
  const box = element("fieldset", { class: "section", "data-key": path.join(".") }, element("legend", { text: title }));
  if (schema.description && path.length > 1) box.append(element("div", { class: "help", text: schema.description.split("\n")[0] }));
  Object.entries(schema.properties).forEach(([name, property]) => box.append(renderProperty([...path, name], property)));
  box.append(element("div", { class: "error" }));
  return box;
}

// ------------------------------------------------------------------ one property, by kind

function renderProperty(path, raw) {
  const key = path.join(".");
  const info = classify(raw, key);
  // the field's own description and default come first (a referenced model has its own description)
  const own = { description: raw.description, default: raw.default };
  info.schema = { ...info.schema, description: own.description ?? info.schema.description, default: own.default ?? info.schema.default };
  const title = String(path[path.length - 1]);
  switch (info.kind) {
    case "section":
      return sectionBlock(path, info.schema, title);
    case "component":
      return componentBlock(path, info.schema, title, info.nullable);
    case "networks": {
      const value = getAt(path);
      if (value && typeof value === "object" && !("name" in value) && Object.keys(value).length) {
        return membersField(path, info);
      }
      return componentBlock(path, info.schema, title, info.nullable);
    }
    case "members":
      return membersField(path, info);
    case "components": {
      const value = getAt(path);
      const items = Array.isArray(value) ? value : [];
      const box = element("fieldset", { class: "section", "data-key": key }, element("legend", { text: title }));
      if (info.schema.description || raw.description) box.append(element("div", { class: "help", text: raw.description || "" }));
      items.forEach((_, index) => {
        const block = componentBlock([...path, index], info.schema, `${title}[${index}]`);
        block.querySelector("legend").append(" ", button("×", "remove", () => { items.splice(index, 1); store(path, items.slice(), true); }));
        box.append(block);
      });
      box.append(button("+ add", "add a component", () => {
        items.push({ name: components(info.schema)[0].name });
        store(path, items.slice(), true);
      }));
      box.append(element("div", { class: "error" }));
      return box;
    }
    case "list":
      return field(path, info, listControl(path, info));
    case "mapping":
      return field(path, info, mappingControl(path, textValue));
    case "entries":
      return field(path, info, mappingControl(path, jsonValue));
    case "free":
      return field(path, info, freeControl(path, (value) => store(path, value)));
    default:
      return field(path, info, scalarControl(path, info));
  }
}

// A mapping name -> component (chain members, named networks).
function membersField(path, info) {
  const slot = info.schema;
  const value = getAt(path);
  const names = value && typeof value === "object" ? Object.keys(value) : [];
  const box = element("fieldset", { class: "section", "data-key": path.join(".") },
    element("legend", { text: String(path[path.length - 1]) }));
  if (info.schema.description) box.append(element("div", { class: "help", text: info.schema.description }));
  const rename = (old, name) => {
    const renamed = Object.fromEntries(Object.entries(getAt(path)).map(([k, v]) => [k === old ? name : k, v]));
    store(path, renamed, true);
  };
  names.forEach((name) => {
    const key = element("input", { class: "key", type: "text", spellcheck: "false", "aria-label": `${path.join(".")} name` });
    key.value = name;
    key.addEventListener("change", () => { if (key.value.trim() && !(key.value.trim() in getAt(path))) rename(name, key.value.trim()); else key.value = name; });
    const remove = button("×", "remove this entry", () => {
      const rest = { ...getAt(path) };
      delete rest[name];
      store(path, rest, true);
    });
    box.append(element("div", { class: "row" }, key, componentBlock([...path, name], slot, name), remove));
  });
  box.append(button("+ add", "add an entry", () => {
    let name = "member";
    for (let n = 2; names.includes(name); n += 1) name = `member${n}`;
    store(path, { ...(getAt(path) || {}), [name]: { name: components(slot)[0].name } }, true);
  }));
  box.append(element("div", { class: "error" }));
  return box;
}

// ------------------------------------------------------------------ the page

function render() {
  const form = $("form");
  const scroll = window.scrollY;
  form.replaceChildren();
  Object.entries(state.schema.properties).forEach(([name, property]) => {
    const info = classify(property, name);
    if (info.kind === "section") form.append(renderProperty([name], property));
  });
  const general = element("fieldset", { class: "section", "data-key": "" }, element("legend", { text: "run" }));
  Object.entries(state.schema.properties).forEach(([name, property]) => {
    if (classify(property, name).kind !== "section") general.append(renderProperty([name], property));
  });
  form.prepend(general);
  window.scrollTo(0, scroll);
}

function showErrors(errors) {
  document.querySelectorAll(".error").forEach((node) => { node.textContent = ""; });
  document.querySelectorAll(".has-error").forEach((node) => node.classList.remove("has-error"));
  $("errors").replaceChildren(...errors.map((error) => element("li", { text: error.message })));
  errors.forEach((error) => {
    let parts = error.key ? error.key.split(".") : [];
    while (parts.length) {
      const target = document.querySelector(`[data-key="${CSS.escape(parts.join("."))}"]`);
      if (target) {
        const box = target.querySelector(":scope > .error");
        box.textContent = box.textContent ? `${box.textContent}\n${error.message}` : error.message;
        target.classList.add("has-error");
        return;
      }
      parts = parts.slice(0, -1);
    }
  });
}

async function validate() {
  const sequence = (state.sequence += 1);
  const { data } = await api("validate", { config: state.doc, floats: state.floats, path: $("path").value });
  if (sequence !== state.sequence) return; // an edit came after this request: its answer is newer
  if (data.yaml !== undefined) $("yaml").textContent = data.yaml;
  const errors = data.errors || [{ key: "", message: data.error }];
  showErrors(data.ok ? [] : errors);
  if (data.ok) setStatus("valid configuration", "ok");
  else setStatus(`${errors.length} problem${errors.length === 1 ? "" : "s"}`, "bad");
}

async function load() {
  const { data } = await api("load", { path: $("path").value });
  if (!data.ok) {
    setStatus(data.error, "bad");
    return;
  }
  state.doc = data.config;
  state.floats = data.floats;
  render();
  setStatus(`loaded ${data.path}`, "ok");
  await validate();
}

async function check() {
  $("check-result").textContent = "checking (builds the model and runs one forward pass)…";
  const { data } = await api("check", { config: state.doc, floats: state.floats, path: $("path").value });
  $("check-result").textContent = data.ok ? data.summary : `error: ${data.error}`;
  $("check-result").className = data.ok ? "ok" : "bad";
}

async function save(overwrite) {
  const path = $("path").value;
  const { status, data } = await api("save", { path, config: state.doc, floats: state.floats, overwrite });
  if (status === 409 && !overwrite) {
    if (confirm(`${path} exists. Overwrite it? (its previous version is kept as ${path}.bak)`)) await save(true);
    else setStatus("not saved", "");
    return;
  }
  if (!data.ok) setStatus(`not saved: ${data.error}`, "bad");
  else setStatus(`saved ${data.path}${data.backup ? ` (previous version: ${data.backup})` : ""}`, "ok");
}

async function start() {
  const { status, data } = await api("schema");
  if (status !== 200) {
    setStatus(data.error || "the server refused the page", "bad");
    return;
  }
  state.schema = data.schema;
  state.defs = data.schema.$defs;
  state.metrics = data.metrics;
  $("load").addEventListener("click", load);
  $("path").addEventListener("keydown", (event) => { if (event.key === "Enter") load(); });
  $("check").addEventListener("click", check);
  $("save").addEventListener("click", () => save(false));
  const opened = new URLSearchParams(location.search).get("path");
  render();
  if (opened) {
    $("path").value = opened;
    await load();
  } else {
    await validate();
  }
  document.body.dataset.ready = "true";
}

start();
