// Jobline dashboard: plain JS modules, no build step, no dependencies. This module holds the
// page's state, picks the view from the URL's hash and refreshes it; the views are view-*.js,
// the API calls api.js, the elements and every formatted value dom.js.

import { STATUSES, hasIdentity, identity } from "./api.js";
import { $, askForIdentity, el, notice } from "./dom.js";
import { jobAction, openJob, refreshJob } from "./view-job.js";
import {
  nextPage,
  previousPage,
  refreshCounts,
  refreshList,
  resetPaging,
} from "./view-jobs.js";
import { loadJobTypes, renderPayloadForm, submitJob } from "./view-submit.js";

const REFRESH_MS = 2000;
// Counts cost one listing call per status (there is no count endpoint), and counting a status the
// status index does not hold (queued, running, succeeded) reads up to a thousand of the owner's
// jobs: the counts are taken when the page opens, when the identity or the filters change, after
// a change the page made, and on "count again", never on the refresh timer (docs/dashboard.md).

// Everything the page remembers between events. A `generation` numbers a view's requests, so
// an answer that arrives after a newer request was made is dropped.
const state = {
  view: "jobs", // "jobs", "job" or "submit"
  jobTypes: [], // GET /job-types, as last loaded
  list: { cursor: null, previous: [], nextCursor: null, generation: 0 },
  counts: { due: true, generation: 0 }, // due: refresh the counts on the next refresh
  job: { id: null, generation: 0 }, // the job the job view shows
  form: { payload: null, builtFrom: null }, // the payload fields, and the type and schema
  submitted: null, // the answer to show on the job page the submit form goes to
  identityTimer: null, // waits for the typing in the identity fields to pause
};

function route() {
  const hash = location.hash || "#/";
  const job = hash.match(/^#\/jobs\/([^/?]+)$/);
  if (job) {
    state.view = "job";
    const id = decodeURIComponent(job[1]);
    if (id !== state.job.id) openJob(state, id);
  } else if (hash === "#/submit") {
    state.view = "submit";
  } else {
    state.view = "jobs";
  }
  const view = state.view;
  $("view-jobs").hidden = view !== "jobs";
  $("view-job").hidden = view !== "job";
  $("view-submit").hidden = view !== "submit";
  $("nav-jobs").className = view === "jobs" ? "current" : "";
  $("nav-submit").className = view === "submit" ? "current" : "";
  refreshNow();
}

async function refreshView() {
  if (!hasIdentity()) {
    askForIdentity(); // every data call needs one: make none
    return;
  }
  if (state.view === "jobs") {
    const counts = state.counts.due;
    state.counts.due = false;
    await Promise.all([refreshList(state), counts ? refreshCounts(state) : null]);
  } else if (state.view === "job" && state.job.id) {
    await refreshJob(state);
  }
}

function refreshNow() {
  refreshView();
}

async function loop() {
  if ($("auto-refresh").checked && !document.hidden) {
    try {
      await refreshView();
    } catch (error) {
      notice({ status: 0, ok: false, body: { detail: String(error) } });
    }
  }
  setTimeout(loop, REFRESH_MS);
}

function init() {
  for (const status of STATUSES) {
    $("filter-status").append(el("option", { value: status, text: status }));
  }
  $("dev-user").value = identity.devUser;
  $("token").value = identity.token;
  $("auto-refresh").checked = localStorage.getItem("jobline.autoRefresh") !== "off";

  const identityChanged = () => {
    identity.devUser = $("dev-user").value.trim();
    identity.token = $("token").value.trim();
    clearTimeout(state.identityTimer);
    state.identityTimer = setTimeout(() => {
      resetPaging(state);
      state.counts.due = true;
      loadJobTypes(state);
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
    resetPaging(state);
    state.counts.due = true;
    refreshNow();
  };
  $("filter-status").addEventListener("change", filtersChanged);
  $("filter-type").addEventListener("change", filtersChanged);
  $("page-size").addEventListener("change", filtersChanged);
  $("filters").addEventListener("submit", (event) => event.preventDefault());

  $("next-page").addEventListener("click", () => {
    if (nextPage(state)) refreshNow();
  });
  $("prev-page").addEventListener("click", () => {
    if (previousPage(state)) refreshNow();
  });
  $("first-page").addEventListener("click", () => {
    resetPaging(state);
    refreshNow();
  });

  $("recount").addEventListener("click", () => {
    state.counts.due = true;
    refreshNow();
  });
  $("cancel-job").addEventListener("click", () => jobAction(state, "cancel"));
  $("retry-job").addEventListener("click", () => jobAction(state, "retry"));
  $("submit-type").addEventListener("change", () => renderPayloadForm(state));
  $("submit-form").addEventListener("submit", (event) => submitJob(state, event));

  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshNow();
  });
  loadJobTypes(state);
  route();
  setTimeout(loop, REFRESH_MS);
}

init();
