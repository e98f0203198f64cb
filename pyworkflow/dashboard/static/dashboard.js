// pyworkflow dashboard: live parts over server-sent events, forms without a reload.
// No framework. The server renders every fragment (escaped); this only swaps them in.
"use strict";

function swap(id, html) {
  const target = document.getElementById(id);
  if (target) target.innerHTML = html;
}

function swapActions(html) {
  // Keep the forms (and what is typed in them) unless the actions themselves changed.
  const target = document.getElementById("run-actions");
  if (!target) return;
  const next = document.createElement("div");
  next.innerHTML = html;
  const now = target.querySelector(".actions");
  const fresh = next.querySelector(".actions");
  if (!now || !fresh || now.dataset.key !== fresh.dataset.key) target.innerHTML = html;
}

function connect(url) {
  const source = new EventSource(url);
  source.onopen = () => document.body.classList.add("connected");
  source.onerror = () => document.body.classList.remove("connected");
  source.addEventListener("runs", (e) => swap("runs-live", e.data));
  source.addEventListener("run", (e) => swap("run-live", e.data));
  source.addEventListener("actions", (e) => swapActions(e.data));
  source.addEventListener("end", () => {
    source.close();  // the run is over: no reconnect
    document.body.classList.remove("connected");
    document.body.classList.add("finished");
  });
  window.addEventListener("pagehide", () => source.close());
}

async function submit(form) {
  const message = form.querySelector(".form-message");
  const button = form.querySelector("button");
  if (button) button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (message) {
      message.textContent = answer.ok ? answer.message : answer.error;
      message.classList.toggle("error", !answer.ok);
    }
  } catch (err) {
    if (message) { message.textContent = String(err); message.classList.add("error"); }
  } finally {
    if (button) button.disabled = false;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-ajax")) {
    event.preventDefault();
    submit(form);
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const url = document.body.dataset.live;
  if (url) connect(url);
});
