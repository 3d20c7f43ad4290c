// The driver's page: makes a trip, holds a subscription to the trip's
// driver topic (its presence), and publishes the trip's progress as
// private updates of type "trip" on the trip's topic; the last one,
// "arrived", ends the topic.
import { facts, subscribeURL, publish, explain, mint, el, clock, showError } from "./common.js";
import { draw, states, pickup, last, points } from "./route.js";

const $ = (id) => document.getElementById(id);
const errorBox = $("driver-error");
const move = draw($("map"));

let trip = null; // { id, token, topic, driverTopic }
let presence = null; // the EventSource that makes the driver present
let state = -1; // index in states; -1 before the trip is accepted
let step = 0; // index in points
let seq = 0; // updates published
let busy = false;

function randomID() {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

$("new-trip").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError(errorBox, null);
  try {
    let next;
    if (facts.tokenEndpoint) {
      const g = await mint("driver", randomID());
      next = { id: g.trip, token: g.token, topic: g.topic, driverTopic: g.driverTopic };
    } else {
      const id = $("driver-trip").value.trim();
      const topic = facts.topicBase + id;
      next = { id, token: $("driver-token").value.trim(), topic, driverTopic: topic + "/driver" };
    }
    start(next);
  } catch (err) {
    showError(errorBox, err);
  }
});

function start(next) {
  presence?.close();
  trip = next;
  state = -1;
  step = 0;
  seq = 0;
  move(0);
  $("published").replaceChildren();
  $("trip-id").textContent = trip.id;
  const rider = new URL("/demo/rider", location.origin);
  rider.searchParams.set("trip", trip.id);
  $("rider-link").href = rider;
  $("rider-link").textContent = rider;
  $("trip").hidden = false;
  present();
  render();
}

// present subscribes to the driver topic: the hub lists this
// subscription, and announces it, while the page holds it open. The token
// goes in the query parameter, never in a cookie, so that a rider's tab in
// the same browser cannot change it.
function present() {
  const url = subscribeURL([trip.driverTopic], { token: trip.token });
  const es = new EventSource(url);
  presence = es;
  const out = $("presence");
  es.onopen = () => (out.textContent = "online");
  es.onerror = async () => {
    if (es.readyState !== EventSource.CLOSED) {
      out.textContent = "reconnecting";
      return;
    }
    out.textContent = "offline";
    const why = await explain(subscribeURL([trip.driverTopic], { token: trip.token }));
    if (why.error) showError(errorBox, why.error);
  };
}

function canDrive() {
  return (states[state] === "arriving" && step < pickup) || (states[state] === "on the way" && step < last);
}

function canAdvance() {
  if (state + 1 >= states.length) return false;
  if (states[state] === "arriving") return step === pickup;
  if (states[state] === "on the way") return step === last;
  return true;
}

function render() {
  $("state").textContent = state < 0 ? "not started" : states[state];
  const next = states[state + 1];
  $("advance").textContent = next ? (state < 0 ? "Accept the trip" : `Next: ${next}`) : "Trip over";
  $("advance").disabled = busy || !canAdvance();
  $("drive").disabled = busy || !canDrive();
}

// send publishes the trip as it now is; when the hub refuses, the trip
// goes back to where it was before the click.
async function send(before) {
  showError(errorBox, null);
  busy = true;
  render();
  seq++;
  const final = states[state] === "arrived";
  const data = {
    trip: trip.id,
    seq,
    state: states[state],
    step,
    position: points[step],
    sent: new Date().toISOString(),
  };
  const form = new URLSearchParams({ topic: trip.topic, data: JSON.stringify(data), private: "on", type: "trip" });
  if (final) form.set("end", "on");
  try {
    const id = await publish(form, trip.token);
    $("published").prepend(el("li", {}, `${clock()} #${seq} ${data.state}, step ${step}${final ? ", end of stream" : ""} `, el("code", { text: id })));
    if (final) {
      presence.close();
      $("presence").textContent = "offline (the trip is over)";
    }
  } catch (err) {
    seq--;
    ({ state, step } = before);
    move(step);
    showError(errorBox, err);
  } finally {
    busy = false;
    render();
  }
}

$("advance").addEventListener("click", () => {
  if (!canAdvance()) return;
  const before = { state, step };
  state++;
  send(before);
});

$("drive").addEventListener("click", () => {
  if (!canDrive()) return;
  const before = { state, step };
  step++;
  move(step);
  send(before);
});
