// The jobs view (#/): the list, one page at a time, and the counts per status above it. A listing
// answers summaries (no payload, result or history): all a row shows; a job's page reads it whole.

import { FINAL, STATUSES, api } from "./api.js";
import { $, el, format, notice, statusBadge } from "./dom.js";

// Counts cost one listing call per status (there is no count endpoint): a page of at most
// this many summaries, so a count is exact below it and "≥" from there (a page may also come
// back short with a cursor, when its summaries reach the API's byte budget: "≥" too).
const COUNT_LIMIT = 100;

function filters() {
  return { status: $("filter-status").value, type: $("filter-type").value };
}

export function resetPaging(state) {
  state.list.cursor = null;
  state.list.previous = [];
  state.list.nextCursor = null;
}

export function nextPage(state) {
  const list = state.list;
  if (!list.nextCursor) return false;
  list.previous.push(list.cursor);
  list.cursor = list.nextCursor;
  return true;
}

export function previousPage(state) {
  const list = state.list;
  if (!list.previous.length) return false;
  list.cursor = list.previous.pop();
  return true;
}

export async function refreshList(state) {
  const list = state.list;
  const generation = ++list.generation;
  $("list-state").textContent = "loading…";
  const answer = await api.listJobs(filters(), {
    limit: $("page-size").value,
    cursor: list.cursor,
  });
  if (generation !== list.generation) return; // a newer request was made meanwhile
  notice(answer);
  if (!answer.ok) {
    $("list-state").textContent = format.answer("list", answer);
    return;
  }
  const { items, next_cursor: nextCursor } = answer.body;
  list.nextCursor = nextCursor;
  $("job-rows").replaceChildren(...items.map(jobRow));
  $("empty").hidden = items.length > 0;
  $("page-number").textContent = `page ${list.previous.length + 1}`;
  $("next-page").disabled = !nextCursor;
  $("prev-page").disabled = list.previous.length === 0;
  $("first-page").disabled = list.previous.length === 0;
  $("list-state").textContent = `${items.length} shown · updated ${format.time(new Date())}`;
}

function jobRow(job) {
  const progress = job.progress
    ? el(
        "span",
        { className: "mini-progress" },
        el("progress", { max: 100, value: job.progress.percent }),
        ` ${format.percent(job.progress.percent)}`,
      )
    : "";
  const link = el("a", {
    href: `#/jobs/${encodeURIComponent(job.id)}`,
    title: job.id,
    className: "mono",
    text: job.id.slice(0, 12),
  });
  const cancelling = job.cancel_requested_at && !FINAL.has(job.status) ? " cancelling" : "";
  return el(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    el("td", {}, link),
    el("td", { text: job.type }),
    el("td", {}, statusBadge(job.status), cancelling),
    el("td", {}, progress),
    el("td", { text: `${job.attempts}/${job.max_attempts}` }),
    el("td", { text: format.date(job.created_at) }),
    el("td", { text: format.date(job.updated_at) }),
  );
}

export async function refreshCounts(state) {
  const counts = state.counts;
  const generation = ++counts.generation;
  const answers = await Promise.all(
    STATUSES.map((status) => api.listJobs(filters(), { status, limit: COUNT_LIMIT })),
  );
  if (generation !== counts.generation) return;
  const chips = STATUSES.map((status, index) => {
    const answer = answers[index];
    let count = "?";
    if (answer.ok) {
      const shown = answer.body.items.length;
      count = answer.body.next_cursor ? `≥${shown}` : String(shown);
    }
    const selected = $("filter-status").value === status ? " selected" : "";
    const chip = el(
      "button",
      {
        type: "button",
        className: `count s-${status}${selected}`,
        title: `show ${status} jobs`,
        dataset: { status, count },
      },
      el("span", { className: "count-n", text: count }),
      el("span", { className: "count-label", text: status.replace("_", " ") }),
    );
    chip.addEventListener("click", () => {
      const select = $("filter-status");
      select.value = select.value === status ? "" : status;
      select.dispatchEvent(new Event("change"));
    });
    return chip;
  });
  $("counts").replaceChildren(...chips);
  $("counted").textContent = `counted ${format.time(new Date())}`;
}
