// The debugger: subscribe and watch events, publish, and watch the active
// subscriptions through the subscriptions API.
import { hub, subscribeURL, publish, explain, refusal, el, pretty, clock, showError } from "./common.js";

const $ = (id) => document.getElementById(id);
const lines = (s) => s.split("\n").map((l) => l.trim()).filter(Boolean);

// Subscribing.

let source = null; // the EventSource
let query = null; // its URL, without the last event ID
const types = new Set(); // the event types listened to, besides message

function state(text) {
  $("sub-state").textContent = text;
}

function show(e) {
  const data = e.data;
  $("events").prepend(
    el("li", { class: "event" },
      el("div", { class: "meta" },
        el("span", { text: clock() }), " ",
        el("span", { class: "type", text: e.type }), " ",
        el("code", { class: "id", text: e.lastEventId || "(no id)" })),
      el("pre", { text: pretty(data) })),
  );
}

function listen(type) {
  if (type === "message" || types.has(type)) return;
  types.add(type);
  source?.addEventListener(type, show);
}

$("subscribe").addEventListener("submit", (e) => {
  e.preventDefault();
  const topics = lines($("sub-topics").value);
  const token = $("sub-token").value.trim();
  source?.close();
  showError($("sub-error"), null);
  query = subscribeURL(topics, { token });
  const es = new EventSource(subscribeURL(topics, { token, lastEventID: $("sub-last").value.trim() }));
  source = es;
  es.onmessage = show;
  types.clear();
  for (const t of $("sub-types").value.split(/[\s,]+/).filter(Boolean)) listen(t);
  state("connecting");
  $("unsubscribe").disabled = false;
  es.onopen = () => state("open: waiting for events");
  es.onerror = async () => {
    if (es !== source) return;
    if (es.readyState !== EventSource.CLOSED) {
      state("reconnecting (the browser sends the last event ID it received)");
      return;
    }
    $("unsubscribe").disabled = true;
    const why = await explain(query);
    if (why.status === 204) {
      state("closed: every topic subscribed to has ended (204)");
    } else {
      state("closed");
      showError($("sub-error"), why.error ?? new Error(`the hub answered ${why.status}`));
    }
  };
});

$("unsubscribe").addEventListener("click", () => {
  source?.close();
  source = null;
  state("not subscribed");
  $("unsubscribe").disabled = true;
});

$("clear-events").addEventListener("click", () => $("events").replaceChildren());

// Publishing.

$("publish").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new URLSearchParams();
  for (const t of lines($("pub-topics").value)) form.append("topic", t);
  form.set("data", $("pub-data").value);
  for (const f of ["id", "type", "retry"]) {
    const v = $("pub-" + f).value.trim();
    if (v) form.set(f, v);
  }
  if ($("pub-private").checked) form.set("private", "on");
  if ($("pub-end").checked) form.set("end", "on");
  const type = form.get("type");
  if (type) listen(type);
  const result = $("pub-result");
  result.className = "";
  result.textContent = "publishing…";
  try {
    const id = await publish(form, $("pub-token").value.trim());
    result.replaceChildren(`${clock()} published: `, el("code", { text: id }));
  } catch (err) {
    result.className = "error";
    result.textContent = `${clock()} refused: ${err.message}`;
  }
});

// The subscriptions API.

let watcher = null;
const active = new Map(); // by the subscription's id

function subsState(text) {
  $("subs-state").textContent = text;
}

function renderSubs() {
  const rows = [...active.values()].map((s) =>
    el("tr", {},
      el("td", {}, el("code", { text: s.topic })),
      el("td", {}, el("code", { text: s.subscriber })),
      el("td", {}, s.payload === undefined ? "" : el("code", { text: JSON.stringify(s.payload) }))));
  $("subs").replaceChildren(...rows);
  if (rows.length === 0) $("subs").append(el("tr", {}, el("td", { colspan: 3, text: "none" })));
}

$("subscriptions").addEventListener("submit", async (e) => {
  e.preventDefault();
  watcher?.close();
  showError($("subs-error"), null);
  const token = $("subs-token").value.trim();
  subsState("listing");
  let list;
  try {
    const resp = await fetch(new URL(hub + "/subscriptions"), { headers: { Authorization: `Bearer ${token}` } });
    if (!resp.ok) throw await refusal(resp);
    list = await resp.json();
  } catch (err) {
    subsState("stopped");
    showError($("subs-error"), err.status === 404 ? new Error(`${err.message}: is the subscriptions API on (-subscriptions)?`) : err);
    return;
  }
  active.clear();
  for (const s of list.subscriptions) active.set(s.id, s);
  renderSubs();
  // Then every change after the list, through the subscription events:
  // private updates that the token's subscribe claim must cover.
  const live = subscribeURL(["/.well-known/mercure/subscriptions/{topic}/{subscriber}"], { token });
  const es = new EventSource(subscribeURL(["/.well-known/mercure/subscriptions/{topic}/{subscriber}"], { token, lastEventID: list.lastEventID }));
  watcher = es;
  $("subs-stop").disabled = false;
  es.onopen = () => subsState("live");
  es.onmessage = (m) => {
    const s = JSON.parse(m.data);
    if (s.active) active.set(s.id, s);
    else active.delete(s.id);
    renderSubs();
  };
  es.onerror = async () => {
    if (es !== watcher) return;
    if (es.readyState !== EventSource.CLOSED) {
      subsState("reconnecting");
      return;
    }
    subsState("stopped");
    $("subs-stop").disabled = true;
    const why = await explain(live);
    if (why.error) showError($("subs-error"), why.error);
  };
});

$("subs-stop").addEventListener("click", () => {
  watcher?.close();
  watcher = null;
  subsState("stopped");
  $("subs-stop").disabled = true;
});
