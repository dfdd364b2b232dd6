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

async function refresh() {
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
        if (/^event: change/m.test(event) && slug === state.slug) refresh();
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
  start();
});
