// What every page shares: the hub's facts, and small helpers around the
// hub's HTTP API (EventSource to subscribe, fetch to publish and to read
// the subscriptions API).

/** The facts the server rendered into the page. */
export const facts = JSON.parse(document.getElementById("facts").textContent);

/** The hub's URL, on this page's origin. */
export const hub = new URL("/.well-known/mercure", location.origin);

/** subscribeURL is the URL of a subscription to topics. */
export function subscribeURL(topics, { lastEventID = "", token = "" } = {}) {
  const url = new URL(hub);
  for (const t of topics) url.searchParams.append("topic", t);
  if (lastEventID) url.searchParams.set("lastEventID", lastEventID);
  if (token) url.searchParams.set("authorization", token);
  return url;
}

/** HubError is a refusal of the hub: its status, and its JSON error's code and message. */
export class HubError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

/** refusal turns a response that is not ok into a HubError. */
export async function refusal(resp) {
  let code = "", message = "";
  try {
    const body = await resp.json();
    code = body.error;
    message = body.message;
  } catch {
    message = resp.statusText || "no explanation";
  }
  return new HubError(resp.status, code, message);
}

/** publish posts an update (a FormData or URLSearchParams) with a token, and returns its ID. */
export async function publish(form, token) {
  const resp = await fetch(hub, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: new URLSearchParams(form),
  });
  if (!resp.ok) throw await refusal(resp);
  return (await resp.text()).trim();
}

/**
 * explain asks the hub why an EventSource at url stopped: it makes the
 * same request with fetch, which can read the answer EventSource hides,
 * and returns its status and, when the hub refused, the HubError. A
 * subscription that would have worked is aborted at once.
 */
export async function explain(url) {
  const abort = new AbortController();
  try {
    const resp = await fetch(url, { signal: abort.signal, headers: { Accept: "text/event-stream" } });
    if (resp.ok && resp.status !== 204) return { status: resp.status };
    return { status: resp.status, error: resp.status === 204 ? null : await refusal(resp) };
  } catch (err) {
    return { status: 0, error: err };
  } finally {
    abort.abort();
  }
}

/** mint asks the development hub for a demo token (POST /demo/token). */
export async function mint(role, trip) {
  const resp = await fetch("/demo/token", {
    method: "POST",
    body: new URLSearchParams({ role, trip }),
  });
  if (!resp.ok) throw await refusal(resp);
  return resp.json();
}

/** el makes an element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** pretty returns data indented when it is JSON, and as it is otherwise. */
export function pretty(data) {
  try {
    return JSON.stringify(JSON.parse(data), null, 2);
  } catch {
    return data;
  }
}

/** clock is the time of day, to the millisecond. */
export function clock(d = new Date()) {
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

/** showError puts an error in an element with role=alert, or hides it when err is null. */
export function showError(node, err) {
  node.hidden = !err;
  node.textContent = err ? String(err.message ?? err) : "";
}
