// Elements built from data, safely, and every value turned into text in one place.
// Every value that comes from the API is put in the page with textContent, never parsed as HTML:
// job payloads, results and errors are whatever a caller sent.

import { STATUSES } from "./api.js";

export const $ = (id) => document.getElementById(id);

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return el("span", { className: `status s-${known}`, text: status });
}

const REASONS = {
  0: "network error",
  200: "OK",
  202: "Accepted",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

function describeDetail(detail) {
  if (Array.isArray(detail)) {
    return detail
      .map((item) =>
        item && typeof item === "object"
          ? `${(item.loc || []).join(".")}: ${item.msg}`
          : String(item),
      )
      .join("; ");
  }
  if (detail && typeof detail === "object") return JSON.stringify(detail);
  return String(detail ?? "");
}

// The formatter: how dates, durations, progress, JSON and the API's answers read in the page.
export const format = {
  // An API timestamp (ISO 8601 in UTC) as "2026-12-04 10:11:12Z"; nothing for none.
  date(iso) {
    if (!iso) return "";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
  },
  // A time of day in the browser's locale (when the list was last loaded).
  time(date) {
    return date.toLocaleTimeString();
  },
  duration(ms) {
    return `${ms} ms`;
  },
  percent(value) {
    return `${Math.round(value)}%`;
  },
  json(value) {
    return JSON.stringify(value, null, 2);
  },
  // An API answer as "label: HTTP 409 Conflict: detail" (no detail when it succeeded).
  answer(label, answer) {
    const head = `${label}: HTTP ${answer.status} ${REASONS[answer.status] || ""}`.trim();
    if (answer.ok) return head;
    const body = answer.body;
    const detail = body && typeof body === "object" ? body.detail : body;
    return `${head}: ${describeDetail(detail)}`;
  },
};

export function showAnswer(output, label, answer, extra) {
  output.textContent = format.answer(label, answer) + (extra ? ` ${extra}` : "");
  output.className = `answer ${answer.ok ? "ok" : "bad"}`;
  output.dataset.status = String(answer.status);
}

// The notice under the header: the last failed call, or a request for an identity.

export function askForIdentity() {
  const box = $("notice");
  box.textContent =
    "Who are you? Set a Dev user (local stack: sent as X-Dev-User) or paste a token " +
    "(deployed: sent as Authorization: Bearer).";
  box.hidden = false;
}

export function notice(answer) {
  const box = $("notice");
  if (!answer || answer.ok) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  let hint = "";
  if (answer.status === 401 || answer.status === 403) {
    hint = " — set a Dev user (local: X-Dev-User) or paste a token (deployed: Bearer).";
  }
  box.textContent = format.answer("API", answer) + hint;
  box.hidden = false;
}
