// The labelling page. Every text from the server is set with textContent, never as HTML.
"use strict";

const state = { annotator: null, token: null, item: null, mode: "compare", shownAt: 0, busy: false, loading: false, load: 0 };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const err = new Error(data.error || `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

function showProgress(p) {
  let text = `You: ${p.yours} labels · everyone: ${p.total}`;
  if (p.shared) text += ` · agreement with others: ${Math.round(100 * p.agreement)}% on ${p.shared} shared pairs`;
  $("progress").textContent = text;
}

function showDialogue(turns) {
  const box = $("dialogue");
  box.replaceChildren();
  for (const turn of turns) {
    const line = document.createElement("p");
    line.className = `turn ${turn.role}`;
    const who = document.createElement("strong");
    who.textContent = turn.role === "agent" ? "Agent" : turn.role === "system" ? "System" : "User";
    line.append(who, document.createTextNode(" " + turn.text));
    box.append(line);
  }
  box.scrollTop = box.scrollHeight;
}

async function loadNext() {
  const id = encodeURIComponent(state.annotator);
  const mode = state.mode;
  const load = ++state.load;  // only the latest load may change the screen
  state.loading = true;
  try {
    const item = mode === "compare"
      ? await api("GET", `/api/next?annotator_id=${id}`)
      : await api("GET", `/api/next-rating?annotator_id=${id}&scale=${mode}`);
    if (mode !== state.mode || load !== state.load) return;  // superseded while loading
    state.item = item;
    if (mode === "compare") {
      $("text-a").textContent = item.reply_a;
      $("text-b").textContent = item.reply_b;
    } else {
      $("text-r").textContent = item.reply;
    }
    showDialogue(state.item.turns);
    showProgress(state.item.progress);
    $("reason").value = "";
    state.shownAt = performance.now();
    $("status").textContent = "";
    // For tests and scripts: what is on screen now ("compare:12", "stars:3").
    document.body.dataset.ready = `${state.mode}:${state.item.comparison_id ?? state.item.item_id}`;
  } catch (err) {
    $("status").textContent = `Could not load the next item: ${err.message}. Press any key to try again.`;
  } finally {
    if (load === state.load) state.loading = false;
  }
}

async function send(value) {
  if (!state.item || state.busy) return;  // one send at a time; the label id makes resends harmless
  state.busy = true;
  const item = state.item;
  const reason = $("reason").value.trim() || null;
  const seconds = Math.round((performance.now() - state.shownAt) / 100) / 10;
  try {
    if (state.mode === "compare") {
      await api("POST", "/api/labels", { label_id: item.label_id, comparison_id: item.comparison_id,
        annotator_id: state.annotator, choice: value, reason, seconds });
    } else {
      await api("POST", "/api/ratings", { label_id: item.label_id, item_id: item.item_id,
        annotator_id: state.annotator, scale: state.mode, value: Number(value), reason });
    }
    // Stored. Until the next item is on screen, keys have nothing to label.
    state.item = null;
    delete document.body.dataset.ready;
    document.body.dataset.sent = String((Number(document.body.dataset.sent) || 0) + 1);
    await loadNext();
  } catch (err) {
    if (err.status === 409) {
      // Already labelled (another tab, or an earlier send whose answer was lost): move on.
      state.item = null;
      delete document.body.dataset.ready;
      await loadNext();
      $("status").textContent = `Skipped: ${err.message}.`;
    } else {
      $("status").textContent = `Not saved: ${err.message}. Press the key again to retry.`;
    }
  } finally {
    state.busy = false;
  }
}

function setMode(mode) {
  state.mode = mode;
  state.item = null;  // keys do nothing until an item of the new mode is shown
  delete document.body.dataset.ready;
  for (const b of document.querySelectorAll("button.mode")) b.classList.toggle("active", b.id === `mode-${mode}`);
  $("compare").hidden = mode !== "compare";
  $("rate").hidden = mode === "compare";
  $("thumbs-keys").hidden = mode !== "thumbs";
  $("stars-keys").hidden = mode !== "stars";
  if (state.annotator) loadNext();
}

const KEYS = {
  compare: { "1": "a", "2": "b", t: "tie", s: "skip" },
  thumbs: { u: "1", d: "0", "+": "1", "-": "0" },
  stars: { "1": "1", "2": "2", "3": "3", "4": "4", "5": "5" },
};

document.addEventListener("keydown", (event) => {
  if (!state.annotator || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;  // typing a reason or a name
  if (event.repeat) return;  // a key held down must not label item after item
  if (!state.item && !state.loading && !state.busy) {
    loadNext();  // the last load failed: any key retries it
    return;
  }
  const value = KEYS[state.mode][event.key.toLowerCase()];
  if (value !== undefined) {
    event.preventDefault();
    send(value);
  }
});

async function startWork(who) {
  state.annotator = who.annotator_id;
  $("signin").hidden = true;
  $("work").hidden = false;
  document.activeElement.blur();
  await loadNext();
}

// With access control the invitation link carries the token after "#token=": the fragment
// never reaches the server's logs or other sites. It is kept for this tab only.
async function signInWithToken() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem("token", fromLink);
    history.replaceState(null, "", location.pathname);  // out of the address bar and history
  }
  state.token = fromLink || sessionStorage.getItem("token");
  $("name-field").hidden = true;
  if (!state.token) {
    $("signin-error").textContent = "Open the invitation link the organiser sent you to start labelling.";
    return;
  }
  try {
    await startWork(await api("GET", "/api/me"));
  } catch (err) {
    $("signin-error").textContent = `${err.message}.`;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const config = await api("GET", "/api/config").catch(() => ({ access: "tokens" }));
  if (config.access !== "open") await signInWithToken();
  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("name").value.trim();
    if (!name) {
      $("signin-error").textContent = "Please enter your name first.";
      return;
    }
    try {
      await startWork(await api("POST", "/api/annotators", { name }));
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  });
  for (const b of document.querySelectorAll("[data-choice]")) b.addEventListener("click", () => send(b.dataset.choice));
  for (const b of document.querySelectorAll("[data-value]")) b.addEventListener("click", () => send(b.dataset.value));
  $("mode-compare").addEventListener("click", () => setMode("compare"));
  $("mode-thumbs").addEventListener("click", () => setMode("thumbs"));
  $("mode-stars").addEventListener("click", () => setMode("stars"));
});
