// Jobline dashboard: plain JS, no build step, no dependencies.
// Every value that comes from the API is put in the page with textContent, never parsed as HTML:
// job payloads, results and errors are whatever a caller sent.
"use strict";

(() => {
  const STATUSES = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "dead_lettered",
    "rejected",
  ];
  const FINAL = new Set(["succeeded", "failed", "cancelled", "dead_lettered", "rejected"]);
  const REFRESH_MS = 2000;
  // Counts cost one listing call per status (there is no count endpoint): refresh them every
  // fifth tick (10 s) and after a change, not every two seconds.
  const COUNT_EVERY_TICKS = 5;
  const COUNT_LIMIT = 100;

  // The API is the folder above the page: /ui/ -> /, /prod/ui/ -> /prod/ (named stages).
  const API_BASE = new URL(
    location.pathname.replace(/(^|\/)ui\/?(index\.html)?$/, "$1"),
    location.origin,
  );

  const $ = (id) => document.getElementById(id);

  // ---- elements from data, safely ---------------------------------------------------------

  function el(tag, props, ...children) {
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

  function statusBadge(status) {
    const known = STATUSES.includes(status) ? status : "unknown";
    return el("span", { className: `status s-${known}`, text: status });
  }

  function when(iso) {
    if (!iso) return "";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

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

  function answerText(label, answer) {
    const head = `${label}: HTTP ${answer.status} ${REASONS[answer.status] || ""}`.trim();
    if (answer.ok) return head;
    const detail = answer.body && typeof answer.body === "object" ? answer.body.detail : answer.body;
    return `${head}: ${describeDetail(detail)}`;
  }

  function showAnswer(output, label, answer, extra) {
    output.textContent = answerText(label, answer) + (extra ? ` ${extra}` : "");
    output.className = `answer ${answer.ok ? "ok" : "bad"}`;
    output.dataset.status = String(answer.status);
  }

  // ---- identity and API calls -------------------------------------------------------------

  const identity = {
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

  async function api(path, { method = "GET", body, headers = {} } = {}) {
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

  function hasIdentity() {
    return Boolean(identity.devUser || identity.token);
  }

  function askForIdentity() {
    const box = $("notice");
    box.textContent =
      "Who are you? Set a Dev user (local stack: sent as X-Dev-User) or paste a token (deployed: sent as Authorization: Bearer).";
    box.hidden = false;
  }

  function notice(answer) {
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
    box.textContent = answerText("API", answer) + hint;
    box.hidden = false;
  }

  // ---- job types ----------------------------------------------------------------------------

  let jobTypes = [];

  async function loadJobTypes() {
    const answer = await api("job-types");
    if (!answer.ok || !Array.isArray(answer.body)) {
      if (hasIdentity()) notice(answer);
      return;
    }
    jobTypes = answer.body;
    const filter = $("filter-type");
    const chosen = filter.value;
    filter.replaceChildren(el("option", { value: "", text: "any" }));
    for (const type of jobTypes) filter.append(el("option", { value: type.name, text: type.name }));
    filter.value = jobTypes.some((t) => t.name === chosen) ? chosen : "";
    const select = $("submit-type");
    const current = select.value;
    select.replaceChildren(
      ...jobTypes.map((type) => el("option", { value: type.name, text: type.name })),
    );
    if (jobTypes.some((t) => t.name === current)) select.value = current;
    renderPayloadForm(); // keeps what was typed when the type and its schema are unchanged
  }

  // ---- the jobs list ------------------------------------------------------------------------

  const list = { cursor: null, previous: [], nextCursor: null, generation: 0 };
  let countsGeneration = 0;

  function listQuery(extra) {
    const params = new URLSearchParams();
    const status = $("filter-status").value;
    const type = $("filter-type").value;
    if (status) params.set("status", status);
    if (type) params.set("type", type);
    for (const [key, value] of Object.entries(extra)) {
      if (value !== null && value !== undefined) params.set(key, value);
    }
    return `jobs?${params}`;
  }

  function resetPaging() {
    list.cursor = null;
    list.previous = [];
    list.nextCursor = null;
  }

  async function refreshList() {
    const generation = ++list.generation;
    $("list-state").textContent = "loading…";
    const answer = await api(listQuery({ limit: $("page-size").value, cursor: list.cursor }));
    if (generation !== list.generation) return; // a newer request was made meanwhile
    notice(answer);
    if (!answer.ok) {
      $("list-state").textContent = answerText("list", answer);
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
    $("list-state").textContent = `${items.length} shown · updated ${new Date().toLocaleTimeString()}`;
  }

  function jobRow(job) {
    const progress = job.progress
      ? el(
          "span",
          { className: "mini-progress" },
          el("progress", { max: 100, value: job.progress.percent }),
          ` ${Math.round(job.progress.percent)}%`,
        )
      : "";
    return el(
      "tr",
      { dataset: { jobId: job.id, status: job.status } },
      el("td", {}, el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, title: job.id, className: "mono", text: job.id.slice(0, 12) })),
      el("td", { text: job.type }),
      el("td", {}, statusBadge(job.status), job.cancel_requested_at && !FINAL.has(job.status) ? " cancelling" : ""),
      el("td", {}, progress),
      el("td", { text: `${job.attempts}/${job.max_attempts}` }),
      el("td", { text: when(job.created_at) }),
      el("td", { text: when(job.updated_at) }),
    );
  }

  async function refreshCounts() {
    const generation = ++countsGeneration;
    const answers = await Promise.all(
      STATUSES.map((status) => api(listQuery({ status, limit: COUNT_LIMIT }))),
    );
    if (generation !== countsGeneration) return;
    const chips = STATUSES.map((status, index) => {
      const answer = answers[index];
      let count = "?";
      if (answer.ok) {
        const shown = answer.body.items.length;
        count = answer.body.next_cursor ? `≥${shown}` : String(shown);
      }
      const chip = el(
        "button",
        {
          type: "button",
          className: `count s-${status}${$("filter-status").value === status ? " selected" : ""}`,
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
  }

  // ---- one job ------------------------------------------------------------------------------

  const jobView = { id: null, generation: 0 };

  async function refreshJob() {
    const id = jobView.id;
    const generation = ++jobView.generation;
    const answer = await api(`jobs/${encodeURIComponent(id)}`);
    if (generation !== jobView.generation || id !== jobView.id) return;
    notice(answer.status === 404 ? null : answer);
    if (!answer.ok) {
      $("job-status").replaceChildren(el("span", { className: "status s-unknown", text: answerText("get", answer) }));
      return;
    }
    renderJob(answer.body);
  }

  function renderJob(job) {
    $("job-id").textContent = job.id;
    $("job-status").replaceChildren(statusBadge(job.status));
    $("job-status").dataset.status = job.status;
    const progress = job.progress;
    $("job-progress").value = progress ? progress.percent : FINAL.has(job.status) && job.status === "succeeded" ? 100 : 0;
    $("job-progress-text").textContent = progress
      ? `${Math.round(progress.percent)}%${progress.message ? ` · ${progress.message}` : ""}`
      : "no progress reported";
    const fields = [
      ["type", job.type],
      ["attempts", `${job.attempts} of ${job.max_attempts}`],
      ["created", when(job.created_at)],
      ["updated", when(job.updated_at)],
      ["started", when(job.started_at)],
      ["finished", when(job.finished_at)],
      ["runs after", when(job.run_after)],
      ["cancel requested", when(job.cancel_requested_at)],
    ];
    $("job-fields").replaceChildren(
      ...fields.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value || "—" })]),
    );
    $("job-error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "none";
    $("job-payload").textContent = json(job.payload);
    $("job-result").textContent = job.result === null || job.result === undefined ? "none" : json(job.result);
    const history = job.history || [];
    $("job-history").replaceChildren(
      ...(history.length ? history.map((attempt, index) => attemptItem(job, attempt, index === history.length - 1)) : [el("li", { className: "muted", text: "no attempt yet" })]),
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
      ? `${when(attempt.started_at)} → ${when(attempt.finished_at)}`
      : `${when(attempt.started_at)} →`;
    return el(
      "li",
      { className: `attempt ${outcome}`, dataset: { attempt: attempt.attempt } },
      el("span", { className: "attempt-n", text: `#${attempt.attempt}` }),
      el("span", { className: "attempt-time", text: span }),
      attempt.duration_ms !== null && attempt.duration_ms !== undefined
        ? el("span", { className: "attempt-duration", text: `${attempt.duration_ms} ms` })
        : null,
      el("span", { className: "attempt-outcome", text }),
      attempt.request_id ? el("span", { className: "attempt-request mono", text: attempt.request_id, title: "Lambda request id" }) : null,
    );
  }

  async function jobAction(action) {
    const id = jobView.id;
    const output = $("action-answer");
    output.textContent = `${action}…`;
    const answer = await api(`jobs/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    let extra = "";
    if (answer.ok && answer.body && answer.body.id === id) {
      if (action === "cancel") {
        extra = answer.status === 202 ? "— cancellation requested; the job stops at its next checkpoint" : "— cancelled";
      } else {
        extra = "— queued again";
      }
      jobView.generation++; // an older GET in flight must not overwrite this answer
      renderJob(answer.body);
    }
    showAnswer(output, action, answer, extra);
  }

  // ---- the submit form, generated from each type's JSON Schema ------------------------------

  let payloadForm = null;
  let submitted = null; // the answer to show on the job page the submit form goes to

  function resolve(schema, root) {
    let current = schema || {};
    for (let depth = 0; depth < 10; depth++) {
      if (current.$ref && current.$ref.startsWith("#/")) {
        const target = current.$ref
          .slice(2)
          .split("/")
          .reduce((node, key) => (node ? node[key] : undefined), root);
        const { $ref, ...rest } = current;
        current = { ...(target || {}), ...rest };
      } else if (Array.isArray(current.allOf) && current.allOf.length === 1) {
        const { allOf, ...rest } = current;
        current = { ...allOf[0], ...rest };
      } else {
        break;
      }
    }
    return current;
  }

  function kindOf(schema, root) {
    const resolved = resolve(schema, root);
    if (Array.isArray(resolved.enum) && resolved.enum.every((v) => v === null || typeof v !== "object")) {
      return { kind: "enum", schema: resolved };
    }
    const options = resolved.anyOf || resolved.oneOf;
    if (Array.isArray(options)) {
      const real = options.filter((option) => resolve(option, root).type !== "null");
      if (real.length === 1 && real.length < options.length) {
        const inner = kindOf(real[0], root);
        const merged = { ...inner.schema, title: resolved.title, description: resolved.description, default: resolved.default };
        return inner.kind === "json" ? { kind: "json", schema: resolved } : { kind: inner.kind, schema: merged, nullable: true };
      }
      return { kind: "json", schema: resolved };
    }
    const type = resolved.type;
    if (type === "string" || type === "number" || type === "integer" || type === "boolean") {
      return { kind: type, schema: resolved };
    }
    if (type === "object" && resolved.properties && Object.keys(resolved.properties).length) {
      return { kind: "object", schema: resolved };
    }
    return { kind: "json", schema: resolved };
  }

  // A field: {node, read() -> {value} | {omit: true} | {error}}
  function buildField(schema, path, required, root) {
    const { kind, schema: resolved } = kindOf(schema, root);
    const name = ["payload", ...path].join(".");
    const labelText = path[path.length - 1] || "payload";
    const hint = resolved.description ? el("small", { className: "muted", text: resolved.description }) : null;
    const label = (control) =>
      el("label", { className: `field field-${kind}` }, el("span", { className: "field-name", text: labelText }, required ? el("abbr", { title: "required", text: " *" }) : null), control, hint);

    if (kind === "object") {
      const requiredNames = new Set(resolved.required || []);
      const children = Object.entries(resolved.properties).map(([key, child]) => [key, buildField(child, [...path, key], requiredNames.has(key), root)]);
      const node = path.length
        ? el("fieldset", { className: "nested" }, el("legend", { text: labelText }), hint, ...children.map(([, field]) => field.node))
        : el("div", {}, ...children.map(([, field]) => field.node));
      return {
        node,
        read() {
          const value = {};
          for (const [key, field] of children) {
            const read = field.read();
            if (read.error) return read;
            if (!read.omit) value[key] = read.value;
          }
          if (!required && path.length && Object.keys(value).length === 0) return { omit: true };
          return { value };
        },
      };
    }

    if (kind === "enum") {
      const values = resolved.enum;
      const select = el("select", { name }, required ? null : el("option", { value: "", text: "—" }), ...values.map((value, index) => el("option", { value: String(index), text: value === null ? "null" : String(value) })));
      const fallback = values.indexOf(resolved.default);
      select.value = fallback >= 0 ? String(fallback) : required ? "0" : "";
      return { node: label(select), read: () => (select.value === "" ? { omit: true } : { value: values[Number(select.value)] }) };
    }

    if (kind === "boolean") {
      const box = el("input", { type: "checkbox", name });
      box.checked = resolved.default === true;
      return { node: label(box), read: () => ({ value: box.checked }) };
    }

    if (kind === "number" || kind === "integer") {
      const min = resolved.minimum ?? resolved.exclusiveMinimum;
      const max = resolved.maximum ?? resolved.exclusiveMaximum;
      const input = el("input", { type: "number", name, step: kind === "integer" ? "1" : "any", min, max });
      if (typeof resolved.default === "number") input.value = String(resolved.default);
      return {
        node: label(input),
        read() {
          if (input.value.trim() === "") return { omit: true };
          const value = Number(input.value);
          if (!Number.isFinite(value) || (kind === "integer" && !Number.isInteger(value))) {
            return { error: `${name}: not ${kind === "integer" ? "an integer" : "a number"}` };
          }
          return { value };
        },
      };
    }

    if (kind === "string") {
      const type = resolved.format === "uri" ? "url" : resolved.format === "email" ? "email" : "text";
      const input = el("input", { type, name, minlength: resolved.minLength, maxlength: resolved.maxLength, placeholder: resolved.format || "" });
      if (typeof resolved.default === "string") input.value = resolved.default;
      return { node: label(input), read: () => (input.value === "" ? { omit: true } : { value: input.value }) };
    }

    // Anything else (arrays, maps, unions, a free-form object): JSON text.
    const area = el("textarea", { name, rows: path.length ? 3 : 8, spellcheck: "false", className: "mono" });
    if (resolved.default !== undefined) area.value = json(resolved.default);
    else if (!path.length) area.value = "{}";
    return {
      node: label(area),
      read() {
        if (area.value.trim() === "") return path.length && !required ? { omit: true } : { error: `${name}: JSON needed` };
        try {
          return { value: JSON.parse(area.value) };
        } catch (error) {
          return { error: `${name}: not valid JSON (${error.message})` };
        }
      },
    };
  }

  let renderedForm = null; // the type and schema the payload fields were built from

  function renderPayloadForm() {
    const type = jobTypes.find((t) => t.name === $("submit-type").value);
    $("submit-description").textContent = type ? type.description : "";
    if (!type) {
      $("payload-fields").replaceChildren();
      payloadForm = renderedForm = null;
      return;
    }
    const schema = type.input_schema || {};
    const key = JSON.stringify([type.name, schema]);
    if (key === renderedForm) return;
    payloadForm = buildField(schema, [], true, schema);
    renderedForm = key;
    $("payload-fields").replaceChildren(payloadForm.node);
  }

  async function submitJob(event) {
    event.preventDefault();
    const output = $("submit-answer");
    const payload = payloadForm ? payloadForm.read() : { value: {} };
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
    const headers = {};
    const key = $("idempotency-key").value.trim();
    if (key) headers["Idempotency-Key"] = key;
    $("submit-button").disabled = true;
    const answer = await api("jobs", { method: "POST", body, headers });
    $("submit-button").disabled = false;
    if (answer.ok && answer.body && answer.body.id) {
      countsDue = true;
      submitted = {
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

  // ---- views, refresh loop ------------------------------------------------------------------

  let view = "jobs";
  let ticks = 0;
  let countsDue = true;

  function route() {
    const hash = location.hash || "#/";
    const job = hash.match(/^#\/jobs\/([^/?]+)$/);
    if (job) {
      view = "job";
      const id = decodeURIComponent(job[1]);
      if (id !== jobView.id) {
        jobView.id = id;
        $("job-fields").replaceChildren();
        $("job-history").replaceChildren();
        for (const pre of ["job-error", "job-payload", "job-result"]) $(pre).textContent = "";
        $("job-status").replaceChildren();
        delete $("job-status").dataset.status;
        const output = $("action-answer");
        output.textContent = "";
        output.className = "answer";
        delete output.dataset.status;
        if (submitted && submitted.id === id) showAnswer(output, "submit", submitted.answer, submitted.extra);
        submitted = null;
      }
    } else if (hash === "#/submit") {
      view = "submit";
    } else {
      view = "jobs";
    }
    $("view-jobs").hidden = view !== "jobs";
    $("view-job").hidden = view !== "job";
    $("view-submit").hidden = view !== "submit";
    $("nav-jobs").className = view === "jobs" ? "current" : "";
    $("nav-submit").className = view === "submit" ? "current" : "";
    refreshNow();
  }

  async function refreshView(tick) {
    if (!hasIdentity()) {
      askForIdentity(); // every data call needs one: make none
      return;
    }
    if (view === "jobs") {
      const counts = countsDue || (tick && ticks % COUNT_EVERY_TICKS === 0);
      countsDue = false;
      await Promise.all([refreshList(), counts ? refreshCounts() : null]);
    } else if (view === "job" && jobView.id) {
      await refreshJob();
    }
  }

  function refreshNow() {
    refreshView(false);
  }

  async function loop() {
    ticks++;
    if ($("auto-refresh").checked && !document.hidden) {
      try {
        await refreshView(true);
      } catch (error) {
        notice({ status: 0, ok: false, body: { detail: String(error) } });
      }
    }
    setTimeout(loop, REFRESH_MS);
  }

  function init() {
    for (const status of STATUSES) $("filter-status").append(el("option", { value: status, text: status }));
    $("dev-user").value = identity.devUser;
    $("token").value = identity.token;
    $("auto-refresh").checked = localStorage.getItem("jobline.autoRefresh") !== "off";

    let identityTimer = null;
    const identityChanged = () => {
      identity.devUser = $("dev-user").value.trim();
      identity.token = $("token").value.trim();
      clearTimeout(identityTimer);
      identityTimer = setTimeout(() => {
        resetPaging();
        countsDue = true;
        loadJobTypes();
        refreshNow();
      }, 300);
    };
    $("dev-user").addEventListener("input", identityChanged);
    $("token").addEventListener("input", identityChanged);
    $("identity").addEventListener("submit", (event) => event.preventDefault());
    $("auto-refresh").addEventListener("change", () => {
      localStorage.setItem("jobline.autoRefresh", $("auto-refresh").checked ? "on" : "off");
    });

    const filtersChanged = () => {
      resetPaging();
      countsDue = true;
      refreshNow();
    };
    $("filter-status").addEventListener("change", filtersChanged);
    $("filter-type").addEventListener("change", filtersChanged);
    $("page-size").addEventListener("change", filtersChanged);
    $("filters").addEventListener("submit", (event) => event.preventDefault());

    $("next-page").addEventListener("click", () => {
      if (!list.nextCursor) return;
      list.previous.push(list.cursor);
      list.cursor = list.nextCursor;
      refreshNow();
    });
    $("prev-page").addEventListener("click", () => {
      if (!list.previous.length) return;
      list.cursor = list.previous.pop();
      refreshNow();
    });
    $("first-page").addEventListener("click", () => {
      resetPaging();
      refreshNow();
    });

    $("cancel-job").addEventListener("click", () => jobAction("cancel"));
    $("retry-job").addEventListener("click", () => jobAction("retry"));
    $("submit-type").addEventListener("change", renderPayloadForm);
    $("submit-form").addEventListener("submit", submitJob);

    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refreshNow();
    });
    loadJobTypes();
    route();
    setTimeout(loop, REFRESH_MS);
  }

  init();
})();
