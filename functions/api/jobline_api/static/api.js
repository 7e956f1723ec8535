// The API: its statuses, where it is (the folder above the page), who calls it, and one
// function per call. Every call answers {status, ok, body}; status 0 is a network error.

export const STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "dead_lettered",
  "rejected",
];
export const FINAL = new Set(["succeeded", "failed", "cancelled", "dead_lettered", "rejected"]);

// The API is the folder above the page: /ui/ -> /, /prod/ui/ -> /prod/ (named stages).
const API_BASE = new URL(
  location.pathname.replace(/(^|\/)ui\/?(index\.html)?$/, "$1"),
  location.origin,
);

export const identity = {
  get devUser() {
    return localStorage.getItem("jobline.devUser") || "";
  },
  set devUser(value) {
    localStorage.setItem("jobline.devUser", value);
  },
  // A token is a credential: kept for this tab's session only.
  get token() {
    return sessionStorage.getItem("jobline.token") || "";
  },
  set token(value) {
    sessionStorage.setItem("jobline.token", value);
  },
};

export function hasIdentity() {
  return Boolean(identity.devUser || identity.token);
}

async function call(path, { method = "GET", body, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (identity.devUser) sent["X-Dev-User"] = identity.devUser;
  if (identity.token) sent.Authorization = `Bearer ${identity.token}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, API_BASE), {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (error) {
    return { status: 0, ok: false, body: { detail: String(error) } };
  }
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

export const api = {
  jobTypes() {
    return call("job-types");
  },
  // GET /jobs: `filters` ({status, type}) are sent when chosen, `extra` ({limit, cursor, or a
  // status of its own}) when not null.
  listJobs(filters, extra) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      if (value) params.set(key, value);
    }
    for (const [key, value] of Object.entries(extra)) {
      if (value !== null && value !== undefined) params.set(key, value);
    }
    return call(`jobs?${params}`);
  },
  job(id) {
    return call(`jobs/${encodeURIComponent(id)}`);
  },
  // POST /jobs/{id}/cancel or /retry
  act(id, action) {
    return call(`jobs/${encodeURIComponent(id)}/${action}`, { method: "POST" });
  },
  submit(body, idempotencyKey) {
    const headers = {};
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return call("jobs", { method: "POST", body, headers });
  },
};
