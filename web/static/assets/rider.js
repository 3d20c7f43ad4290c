// The rider's page: follows one trip's private updates with an
// EventSource, shows the driver's presence from the subscriptions API,
// resumes after a dropped connection from the last event ID, and stops at
// the trip's end (the hub ends the topic, then answers 204).
import { facts, subscribeURL, explain, mint, refusal, el, clock, showError } from "./common.js";
import { draw } from "./route.js";

const $ = (id) => document.getElementById(id);
const errorBox = $("rider-error");
const move = draw($("map"));

let trip = null; // { id, token, topic, presence, presenceEvents }
let stream = null; // the trip's EventSource
let watcher = null; // the presence's EventSource
let lastID = ""; // the ID of the last update received
let ended = false;

const wanted = new URLSearchParams(location.search).get("trip");
if (wanted) $("rider-trip").value = wanted;
if (wanted && facts.tokenEndpoint) follow(wanted, "");

$("follow").addEventListener("submit", (e) => {
  e.preventDefault();
  follow($("rider-trip").value.trim(), $("rider-token")?.value.trim() ?? "");
});

async function follow(id, token) {
  showError(errorBox, null);
  stream?.close();
  watcher?.close();
  try {
    const topic = facts.topicBase + id;
    const presence = "/.well-known/mercure/subscriptions/" + encodeURIComponent(topic + "/driver");
    trip = { id, token, topic, presence, presenceEvents: presence + "/{subscriber}" };
    if (facts.tokenEndpoint) {
      // The token comes back as the hub's cookie (HttpOnly): this page
      // never sees it, and sends it with every request to the hub.
      const g = await mint("rider", id);
      Object.assign(trip, { topic: g.topic, presence: g.presence, presenceEvents: g.presenceEvents });
    }
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  history.replaceState(null, "", "?trip=" + encodeURIComponent(id));
  lastID = "";
  ended = false;
  $("trip-id").textContent = id;
  $("timeline").replaceChildren();
  $("state").textContent = "waiting for the driver";
  $("drop").disabled = false;
  move(0);
  $("trip").hidden = false;
  open();
  watchPresence();
}

// open subscribes to the trip's topic from the last update received, or
// from the start of the history.
function open() {
  const es = new EventSource(subscribeURL([trip.topic], { lastEventID: lastID || "earliest", token: trip.token }));
  stream = es;
  const conn = $("connection");
  conn.textContent = "connecting";
  es.onopen = () => (conn.textContent = "connected");
  es.addEventListener("trip", (e) => {
    lastID = e.lastEventId;
    const data = JSON.parse(e.data);
    $("state").textContent = data.state;
    move(data.step);
    $("timeline").append(
      el("li", { class: "event", "data-seq": data.seq, "data-id": e.lastEventId },
        `${clock()} #${data.seq} ${data.state}, step ${data.step} `, el("code", { text: e.lastEventId })),
    );
  });
  es.onerror = async () => {
    if (es !== stream) return;
    if (es.readyState !== EventSource.CLOSED) {
      conn.textContent = `reconnecting: the browser resumes after ${lastID || "the start"}`;
      return;
    }
    // EventSource has given up: ask the hub why. 204 is the trip's end.
    const why = await explain(subscribeURL([trip.topic], { token: trip.token }));
    if (why.status === 204) {
      finish();
    } else {
      conn.textContent = "closed";
      showError(errorBox, why.error ?? new Error(`the hub answered ${why.status}`));
    }
  };
}

function finish() {
  ended = true;
  stream.close();
  watcher?.close();
  $("connection").textContent = "closed: the trip ended (end of stream, then 204)";
  $("state").textContent += " · trip ended";
  $("drop").disabled = true;
  $("timeline").append(el("li", { class: "mark" }, `${clock()} trip ended`));
}

$("drop").addEventListener("click", () => {
  if (!stream || ended) return;
  stream.close();
  $("timeline").append(el("li", { class: "mark" }, `${clock()} connection dropped; resuming after ${lastID || "the start"}`));
  open();
});

// watchPresence lists the driver topic's subscriptions, then follows
// their subscription events from the list's last event ID: the driver is
// online while it has one.
async function watchPresence() {
  const out = $("presence");
  if (!facts.subscriptions) {
    out.textContent = "unknown: the hub's subscriptions API is off (start herald with -subscriptions)";
    return;
  }
  const headers = trip.token ? { Authorization: `Bearer ${trip.token}` } : {};
  const resp = await fetch(trip.presence, { headers });
  if (!resp.ok) {
    out.textContent = "unknown";
    showError(errorBox, await refusal(resp));
    return;
  }
  const list = await resp.json();
  const online = new Set(list.subscriptions.filter((s) => s.active).map((s) => s.subscriber));
  const show = () => (out.textContent = online.size > 0 ? "online" : "offline");
  show();
  if (ended) return;
  const es = new EventSource(subscribeURL([trip.presenceEvents], { lastEventID: list.lastEventID, token: trip.token }));
  watcher = es;
  es.onmessage = (e) => {
    const s = JSON.parse(e.data);
    if (s.active) online.add(s.subscriber);
    else online.delete(s.subscriber);
    show();
  };
  es.onerror = async () => {
    if (es.readyState !== EventSource.CLOSED || es !== watcher) return;
    const why = await explain(subscribeURL([trip.presenceEvents], { token: trip.token }));
    if (why.error) showError(errorBox, why.error);
  };
}
