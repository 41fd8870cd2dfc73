// The dashboard reads the admin API with the token the operator enters; nothing is stored
// beyond this browser tab (sessionStorage), and every value is inserted as text, never HTML.
"use strict";
const tokenKey = "zoho-bridge-admin-token";
let filters = {};

function authHeaders() {
  return { Authorization: "Bearer " + (sessionStorage.getItem(tokenKey) || "") };
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${response.status}: ${body.message || response.statusText}`);
  }
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tableId, rows, build) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.append(...build(row));
    return tr;
  }));
}

function card(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const strong = document.createElement("b");
  strong.textContent = value;
  div.append(strong, document.createTextNode(label));
  return div;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// Misses per day (all causes) as small bars, built as elements: no HTML from data.
function bars(days) {
  const td = document.createElement("td");
  const box = document.createElement("span");
  box.className = "bars";
  const counts = days.map((d) => d.missed + d.gap + d.not_subscribed + d.delivery_failed);
  const top = Math.max(1, ...counts);
  days.forEach((d, i) => {
    const bar = document.createElement("span");
    bar.style.height = `${Math.max(1, Math.round((counts[i] / top) * 18))}px`;
    if (!counts[i]) bar.className = "zero";
    bar.title = `${d.day}: ${d.missed} missed, ${d.gap} gap, ${d.not_subscribed} not subscribed, ${d.delivery_failed} delivery failed`;
    box.append(bar);
  });
  td.append(box);
  return td;
}

async function refresh() {
  const state = document.getElementById("state");
  try {
    const status = await api("/admin/status");
    document.getElementById("cards").replaceChildren(
      card("events stored", status.events.count),
      card("last event", status.events.last_received_at || "none yet"),
      card("channels at risk", status.channels ? status.channels.at_risk.length : 0),
      card("dead letters", status.sinks.reduce((n, s) => n + s.dead, 0)),
    );
    const problems = document.getElementById("problems");
    problems.replaceChildren(...status.problems.map((p) => {
      const li = document.createElement("li");
      li.textContent = p;
      return li;
    }));
    fill("sinks", status.sinks, (s) => [
      cell(s.name), cell(s.pending), cell(s.dead, s.dead ? "bad" : ""),
      cell(s.oldest_pending_age_seconds === null ? "" : `${Math.round(s.oldest_pending_age_seconds)} s`),
      cell(s.replays_pending),
      cell(s.publish_rate_per_second === null || s.publish_rate_per_second === undefined ? "" : s.publish_rate_per_second),
      cell(s.relays === undefined ? "" : s.relays, s.relays === 0 && s.pending ? "bad" : ""),
      cell(s.disabled ? `disabled: ${s.disabled_reason || ""}` : "ok", s.disabled ? "bad" : ""),
    ]);
    fill("channels", status.channels ? status.channels.at_risk : [], (c) => [
      cell(c.channel_id), cell(c.state, "bad"), cell(c.expires_at), cell(c.last_error),
    ]);
    const reconciliation = await api("/admin/reconciliation");
    fill("watches", reconciliation.watches, (w) => {
      const total = (cause) => w.misses.reduce((n, d) => n + d[cause], 0);
      return [cell(w.connection), cell(w.module), cell(total("missed"), total("missed") ? "bad" : ""),
        cell(total("gap")), cell(total("not_subscribed")), cell(total("delivery_failed")),
        bars(w.misses), cell(duration(w.lag_seconds), w.healthy ? "" : "bad"),
        cell(w.strategy || (w.product === "crm" ? "newest first" : "probing")),
        cell(`${w.today.calls} / ${w.today.credits}`), cell(w.next_run_at),
        cell(w.problem || w.last_error || w.deferred_reason, "bad")];
    });
    fill("budgets", reconciliation.budgets || [], (b) => [
      cell(b.connection), cell(b.books_this_minute), cell(b.books_today), cell(b.crm_credits_today),
      cell(b.reconcile_books_today), cell(b.reconcile_crm_credits_today),
    ]);
    const query = new URLSearchParams({ limit: "50", ...filters });
    const events = await api("/admin/events?" + query);
    fill("events", events.items, (e) => {
      const replay = document.createElement("button");
      replay.className = "small";
      replay.textContent = "replay";
      replay.addEventListener("click", async () => {
        try {
          await api(`/admin/events/${encodeURIComponent(e.id)}/replay`, {
            method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
          });
          replay.textContent = "queued";
        } catch (error) {
          replay.textContent = error.message;
        }
      });
      const action = document.createElement("td");
      action.append(replay);
      return [cell(e.seq), cell(e.received_at), cell(e.source), cell(e.module), cell(e.operation),
        cell(e.record_id), cell(e.origin), action];
    });
    const rejected = await api("/admin/requests?status=rejected&limit=25");
    fill("rejected", rejected.items, (r) => [
      cell(r.received_at), cell(r.kind), cell(r.source), cell(r.http_status, "bad"), cell(r.reason), cell(r.remote_addr),
    ]);
    state.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    state.textContent = error.message;
  }
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(tokenKey, document.getElementById("token").value);
  document.getElementById("token").value = "";
  refresh();
});
document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  filters = Object.fromEntries([...new FormData(event.target)].filter(([, v]) => v));
  refresh();
});
if (sessionStorage.getItem(tokenKey)) refresh();
setInterval(() => { if (sessionStorage.getItem(tokenKey)) refresh(); }, 5000);
