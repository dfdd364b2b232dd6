// CityOS operations dashboard: a shell that signs in, lists the pages the services bring,
// shows one, and refreshes it when the hub says its data changed. Everything it shows is
// drawn (and escaped) by the server; this script only places it.
"use strict";

const state = { token: sessionStorage.getItem("cityos.token") || "", tenant: sessionStorage.getItem("cityos.tenant") || "", pages: [], slug: "", stream: null, me: null };
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { Accept: "application/json" };
  if (state.token) h.Authorization = "Bearer " + state.token;
  if (state.tenant) h["NGSILD-Tenant"] = state.tenant;
  return h;
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) { showLogin(); throw new Error("sign in first"); }
  if (!r.ok) {
    let why = r.status + " " + r.statusText;
    try { const p = await r.json(); why = p.detail || p.title || why; } catch (e) { /* not JSON */ }
    throw new Error(why);
  }
  return r.json();
}

function showLogin() {
  stopStream();
  $("login").hidden = false; $("page").hidden = true; $("who").hidden = true; $("nav").replaceChildren();
}

async function login(ev) {
  ev.preventDefault();
  const form = new FormData($("login"));
  const body = new URLSearchParams({ grant_type: "password", username: form.get("username"), password: form.get("password") });
  const r = await fetch("/auth/token", { method: "POST", body, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) { $("login-error").textContent = answer.error_description || "sign-in refused"; return; }
  state.token = answer.access_token; sessionStorage.setItem("cityos.token", state.token);
  const tenants = tokenTenants(state.token);
  if (!state.tenant && tenants.length && !tenants.includes("") && !tenants.includes("*")) {
    state.tenant = tenants[0]; sessionStorage.setItem("cityos.tenant", state.tenant);
  }
  $("login-error").textContent = ""; $("login").reset(); $("login").hidden = true;
  start();
}

// The tenants a CityOS token names (its "tenants" claim), to start in one the user may
// act in; the door still decides. Another issuer's token may not say: then the default.
function tokenTenants(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - part.length % 4) % 4)));
    return Array.isArray(claims.tenants) ? claims.tenants.map(String) : [];
  } catch (e) { return []; }
}

function logout() {
  state.token = ""; state.tenant = ""; sessionStorage.removeItem("cityos.token"); sessionStorage.removeItem("cityos.tenant");
  showLogin();
}

function renderWho(me) {
  $("who").hidden = !me.auth_required;
  if (!me.auth_required) return;
  $("who-name").textContent = me.subject + " · " + (me.roles || []).join(", ");
  const select = $("tenant");
  const tenants = (me.tenants || []).filter((t) => t !== "*");
  if (!tenants.includes(me.tenant)) tenants.unshift(me.tenant);
  select.replaceChildren(...tenants.map((t) => { const o = document.createElement("option"); o.value = t; o.textContent = t || "(default)"; return o; }));
  select.value = me.tenant;
  select.disabled = tenants.length < 2;
}

function renderNav() {
  const nav = $("nav");
  nav.replaceChildren(...state.pages.map((p) => {
    const a = document.createElement("a");
    a.href = "#/" + p.slug; a.textContent = p.title; a.dataset.slug = p.slug;
    if (p.slug === state.slug) a.setAttribute("aria-current", "page");
    return a;
  }));
}

async function showPage() {
  const wanted = location.hash.replace(/^#\//, "") || (state.pages[0] && state.pages[0].slug);
  if (!wanted) return;
  const changed = wanted !== state.slug;
  state.slug = wanted; renderNav();
  await refresh();
  if (changed || !state.stream) startStream();
}

// live: a refresh asked for by the hub's change event. It leaves a page alone while its
// form holds the viewer's input or an answer (redrawing would wipe both).
async function refresh(live) {
  if (live && $("panels").querySelector("form.page-form[data-dirty], form.page-form[data-answered]")) return;
  try {
    const page = await api("/ui/api/pages/" + encodeURIComponent(state.slug));
    $("page").hidden = false; $("page-error").textContent = "";
    $("page-title").textContent = page.title;
    document.title = page.title + " — CityOS";
    const open = new Set([...document.querySelectorAll("details[open]")].map((d) => d.dataset.id));
    $("panels").innerHTML = page.html;  // markup drawn and escaped by the server
    for (const d of document.querySelectorAll("details.alert")) if (open.has(d.dataset.id)) d.open = true;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    $("panels").dataset.refreshed = String((Number($("panels").dataset.refreshed) || 0) + 1);
  } catch (e) {
    $("page").hidden = false; $("page-error").textContent = String(e.message || e);
  }
}

function setLive(on) { const l = $("live"); l.textContent = on ? "live" : "offline"; l.className = "live " + (on ? "on" : "off"); }

function stopStream() { if (state.stream) { state.stream.abort(); state.stream = null; } setLive(false); }

// Server-sent events read through fetch, so the request carries the bearer token
// (EventSource cannot send headers).
async function startStream() {
  stopStream();
  const control = new AbortController(); state.stream = control;
  const slug = state.slug;
  let clean = false;
  try {
    const r = await fetch("/ui/api/pages/" + encodeURIComponent(slug) + "/events", { headers: headers(), signal: control.signal });
    if (!r.ok || !r.body) throw new Error("no stream");
    setLive(true);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (/^event: change/m.test(event) && slug === state.slug) refresh(true);
      }
    }
    clean = true;  // the server ended it (dashboard_stream_s): open the next one at once
  } catch (e) {
    if (control.signal.aborted) return;
  }
  if (state.stream === control) {
    setLive(false); state.stream = null;
    setTimeout(() => { if (!state.stream && slug === state.slug) startStream(); }, clean ? 0 : 3000);
  }
}

// A page's form (a "form" panel): its values go to the page as one JSON object (POST
// /ui/api/pages/{slug}) and the panels that answer them, drawn and escaped by the server,
// are placed right under the form; errors there too. No reload, no navigation.
function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name || !el.dataset.kind) continue;
    const kind = el.dataset.kind;
    if (kind === "checkbox") values[el.name] = el.checked;
    else if (kind === "number" || kind === "range") values[el.name] = el.value === "" ? null : Number(el.value);
    else values[el.name] = el.value;
  }
  return values;
}

function showRange(el) {
  if (el.dataset.kind !== "range") return;
  const out = el.parentElement.querySelector("output");
  if (out) out.textContent = el.value;
}

function setField(form, name, value) {
  const el = form.elements.namedItem(name);
  if (!el || !el.dataset || !el.dataset.kind) return;
  if (el.dataset.kind === "checkbox") el.checked = value === true;
  else el.value = value === null || value === undefined ? "" : String(value);
  el.removeAttribute("aria-invalid");
  showRange(el);
}

function formInput(ev) {
  const el = ev.target;
  const form = el.closest && el.closest("form.page-form");
  if (!form || !el.dataset || !el.dataset.kind) return;
  form.dataset.dirty = "1";
  el.removeAttribute("aria-invalid");
  showRange(el);
  if (ev.type === "change" && el.dataset.fills) {  // a preset: choosing it fills other fields
    let fills = {};
    try { fills = JSON.parse(el.dataset.fills)[el.value] || {}; } catch (e) { /* none */ }
    for (const [name, value] of Object.entries(fills)) setField(form, name, value);
  }
}

function formResult(form) {
  const next = form.closest("section").nextElementSibling;
  return next && next.classList.contains("form-result") ? next : null;
}

async function submitForm(ev) {
  const form = ev.target;
  if (!form.matches || !form.matches("form.page-form")) return;
  ev.preventDefault();
  const result = formResult(form);
  const status = form.querySelector(".form-status");
  const button = form.querySelector("button[type=submit]");
  const slug = state.slug;
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  button.disabled = true; status.textContent = "working…";
  const fail = (why) => {
    const p = document.createElement("p");
    p.className = "error form-error"; p.setAttribute("role", "alert"); p.textContent = why;
    result.replaceChildren(p);
  };
  try {
    const r = await fetch("/ui/api/pages/" + encodeURIComponent(slug), {
      method: "POST", headers: { ...headers(), "Content-Type": "application/json" }, body: JSON.stringify(formValues(form)),
    });
    if (r.status === 401) { showLogin(); return; }
    const answer = await r.json().catch(() => ({}));
    if (slug !== state.slug || !form.isConnected) return;  // the viewer went elsewhere
    form.dataset.answered = "1";
    if (!r.ok) {
      fail(answer.detail || answer.title || (r.status + " " + r.statusText));
      const bad = answer.field ? form.elements.namedItem(answer.field) : null;
      if (bad && bad.setAttribute) { bad.setAttribute("aria-invalid", "true"); bad.focus(); }
      return;
    }
    result.innerHTML = answer.html;  // markup drawn and escaped by the server
    result.dataset.answers = String((Number(result.dataset.answers) || 0) + 1);
    result.scrollIntoView({ block: "start" });
  } catch (e) {
    fail(String(e.message || e));
  } finally {
    button.disabled = false; status.textContent = "";
  }
}

async function start() {
  try {
    const me = await api("/ui/api/me");
    state.me = me; renderWho(me);
    state.pages = await api("/ui/api/pages");
    $("login").hidden = true;
    await showPage();
  } catch (e) {
    if ($("login").hidden) { $("page").hidden = false; $("page-error").textContent = String(e.message || e); }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("tenant").addEventListener("change", (ev) => { state.tenant = ev.target.value; sessionStorage.setItem("cityos.tenant", state.tenant); stopStream(); showPage(); });
  window.addEventListener("hashchange", showPage);
  $("panels").addEventListener("submit", submitForm);
  $("panels").addEventListener("input", formInput);
  $("panels").addEventListener("change", formInput);
  start();
});
