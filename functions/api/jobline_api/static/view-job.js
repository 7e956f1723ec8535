// One job's view (#/jobs/ID): its fields, progress, payload, result, error, the attempts as a
// timeline, and Cancel and Retry with the API's answer.

import { FINAL, api } from "./api.js";
import { $, el, format, notice, showAnswer, statusBadge } from "./dom.js";

// A different job is opened: the page of the previous one is cleared, and the submit form's
// answer is shown if this is the job it just made.
export function openJob(state, id) {
  state.job.id = id;
  $("job-fields").replaceChildren();
  $("job-history").replaceChildren();
  for (const pre of ["job-error", "job-payload", "job-result"]) $(pre).textContent = "";
  $("job-status").replaceChildren();
  delete $("job-status").dataset.status;
  const output = $("action-answer");
  output.textContent = "";
  output.className = "answer";
  delete output.dataset.status;
  const submitted = state.submitted;
  if (submitted && submitted.id === id) {
    showAnswer(output, "submit", submitted.answer, submitted.extra);
  }
  state.submitted = null;
}

export async function refreshJob(state) {
  const view = state.job;
  const id = view.id;
  const generation = ++view.generation;
  const answer = await api.job(id);
  if (generation !== view.generation || id !== view.id) return;
  notice(answer.status === 404 ? null : answer);
  if (!answer.ok) {
    const text = format.answer("get", answer);
    $("job-status").replaceChildren(el("span", { className: "status s-unknown", text }));
    return;
  }
  renderJob(answer.body);
}

function renderJob(job) {
  $("job-id").textContent = job.id;
  $("job-status").replaceChildren(statusBadge(job.status));
  $("job-status").dataset.status = job.status;
  const progress = job.progress;
  const done = FINAL.has(job.status) && job.status === "succeeded" ? 100 : 0;
  $("job-progress").value = progress ? progress.percent : done;
  $("job-progress-text").textContent = progress
    ? `${format.percent(progress.percent)}${progress.message ? ` · ${progress.message}` : ""}`
    : "no progress reported";
  const fields = [
    ["type", job.type],
    ["attempts", `${job.attempts} of ${job.max_attempts}`],
    ["created", format.date(job.created_at)],
    ["updated", format.date(job.updated_at)],
    ["started", format.date(job.started_at)],
    ["finished", format.date(job.finished_at)],
    ["runs after", format.date(job.run_after)],
    ["cancel requested", format.date(job.cancel_requested_at)],
  ];
  $("job-fields").replaceChildren(
    ...fields.flatMap(([name, value]) => [
      el("dt", { text: name }),
      el("dd", { text: value || "—" }),
    ]),
  );
  $("job-error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "none";
  showData($("job-payload"), job, "payload");
  showData($("job-result"), job, "result");
  const history = job.history || [];
  $("job-history").replaceChildren(
    ...(history.length
      ? history.map((attempt, index) => attemptItem(job, attempt, index === history.length - 1))
      : [el("li", { className: "muted", text: "no attempt yet" })]),
  );
}

// A payload or result: its JSON, or, when the data bucket keeps it (over 64 KiB), a link to it
// (presigned by the API, valid until it says) with its size and SHA-256.
function showData(pre, job, name) {
  const url = job[`${name}_url`];
  if (!url) {
    const value = job[name];
    pre.textContent = value === null || value === undefined ? "none" : format.json(value);
    return;
  }
  const size = job[`${name}_size`];
  pre.replaceChildren(
    el("a", {
      href: url,
      target: "_blank",
      rel: "noopener noreferrer",
      text: `${size} bytes of JSON`,
    }),
    ` in the data bucket (sha256 ${job[`${name}_sha256`]}; link valid until `,
    `${format.date(job[`${name}_url_expires_at`])})`,
  );
}

function attemptItem(job, attempt, last) {
  let outcome = "ok";
  let text = "succeeded";
  if (attempt.error) {
    outcome = "error";
    text = `${attempt.error.type}: ${attempt.error.message}`;
  } else if (!attempt.finished_at) {
    const running = last && job.status === "running";
    outcome = running ? "running" : "lost";
    text = running ? "running" : "no outcome recorded";
  }
  const span = attempt.finished_at
    ? `${format.date(attempt.started_at)} → ${format.date(attempt.finished_at)}`
    : `${format.date(attempt.started_at)} →`;
  const duration = attempt.duration_ms;
  return el(
    "li",
    { className: `attempt ${outcome}`, dataset: { attempt: attempt.attempt } },
    el("span", { className: "attempt-n", text: `#${attempt.attempt}` }),
    el("span", { className: "attempt-time", text: span }),
    duration !== null && duration !== undefined
      ? el("span", { className: "attempt-duration", text: format.duration(duration) })
      : null,
    el("span", { className: "attempt-outcome", text }),
    attempt.request_id
      ? el("span", {
          className: "attempt-request mono",
          text: attempt.request_id,
          title: "Lambda request id",
        })
      : null,
  );
}

// Cancel or Retry: the API's answer is shown, and the job as it answered it.
export async function jobAction(state, action) {
  const view = state.job;
  const id = view.id;
  const output = $("action-answer");
  output.textContent = `${action}…`;
  const answer = await api.act(id, action);
  let extra = "";
  if (answer.ok && answer.body && answer.body.id === id) {
    if (action === "cancel") {
      extra =
        answer.status === 202
          ? "— cancellation requested; the job stops at its next checkpoint"
          : "— cancelled";
    } else {
      extra = "— queued again";
    }
    view.generation++; // an older GET in flight must not overwrite this answer
    state.counts.due = true; // the job changed status: count again on the jobs view
    renderJob(answer.body);
  }
  showAnswer(output, action, answer, extra);
}
