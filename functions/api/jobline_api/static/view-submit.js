// The submit view (#/submit): the job types (which also fill the list's type filter), the
// payload fields generated from the chosen type's schema, the options, and the POST.

import { api, hasIdentity } from "./api.js";
import { $, el, notice, showAnswer } from "./dom.js";
import { buildForm } from "./schema-form.js";

export async function loadJobTypes(state) {
  const answer = await api.jobTypes();
  if (!answer.ok || !Array.isArray(answer.body)) {
    if (hasIdentity()) notice(answer);
    return;
  }
  const jobTypes = answer.body;
  state.jobTypes = jobTypes;
  const option = (type) => el("option", { value: type.name, text: type.name });
  const filter = $("filter-type");
  const chosen = filter.value;
  filter.replaceChildren(el("option", { value: "", text: "any" }));
  for (const type of jobTypes) filter.append(option(type));
  filter.value = jobTypes.some((t) => t.name === chosen) ? chosen : "";
  const select = $("submit-type");
  const current = select.value;
  select.replaceChildren(...jobTypes.map(option));
  if (jobTypes.some((t) => t.name === current)) select.value = current;
  renderPayloadForm(state); // keeps what was typed when the type and its schema are unchanged
}

export function renderPayloadForm(state) {
  const form = state.form;
  const type = state.jobTypes.find((t) => t.name === $("submit-type").value);
  $("submit-description").textContent = type ? type.description : "";
  if (!type) {
    $("payload-fields").replaceChildren();
    form.payload = form.builtFrom = null;
    return;
  }
  const schema = type.input_schema || {};
  const key = JSON.stringify([type.name, schema]);
  if (key === form.builtFrom) return;
  form.payload = buildForm(schema);
  form.builtFrom = key;
  $("payload-fields").replaceChildren(form.payload.node);
}

export async function submitJob(state, event) {
  event.preventDefault();
  const output = $("submit-answer");
  const form = state.form;
  const payload = form.payload ? form.payload.read() : { value: {} };
  if (payload.error) {
    output.textContent = `not sent: ${payload.error}`;
    output.className = "answer bad";
    return;
  }
  const body = {
    type: $("submit-type").value,
    payload: payload.omit ? {} : payload.value,
    max_attempts: Number($("max-attempts").value || 3),
    delay_seconds: Number($("delay-seconds").value || 0),
  };
  const key = $("idempotency-key").value.trim();
  $("submit-button").disabled = true;
  const answer = await api.submit(body, key);
  $("submit-button").disabled = false;
  if (answer.ok && answer.body && answer.body.id) {
    state.counts.due = true;
    state.submitted = {
      id: answer.body.id,
      answer,
      extra: answer.status === 200 ? "— idempotent replay: the original job" : "— queued",
    };
    output.textContent = "";
    location.hash = `#/jobs/${encodeURIComponent(answer.body.id)}`;
    return;
  }
  showAnswer(output, "submit", answer);
}
