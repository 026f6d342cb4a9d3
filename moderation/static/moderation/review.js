// The review workspace: one image at a time, the next one loaded behind it, keyboard first.
// A decision is sent after the undo window (or at once when the next decision is made, or
// when the page is left), so `u` can take it back before anything happens to the image.
(function () {
  "use strict";

  const root = document.getElementById("review-workspace");
  if (!root) return;
  const config = root.dataset;
  const canDecide = config.canDecide === "1";
  const undoMs = Number(config.undoSeconds) * 1000;
  const AHEAD = 2; // images loaded behind the one on screen
  const renewMs = Math.max(5, Math.min(60, Number(config.claimSeconds) / 3)) * 1000;
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const $ = (id) => document.getElementById(id);
  const current = $("review-current");
  const preload = $("review-preload");
  const reasons = $("review-reasons");
  const help = $("review-help");
  const undoButton = $("review-undo");

  const state = {
    items: [], // loaded and claimed: items[0] is on screen, the rest wait hidden
    skipped: [],
    pending: null, // the last decision, not sent until the undo window closes
    inflight: 0,
    deciding: new Set(), // decided here, not yet applied: no longer counted in the queue
    done: 0,
    queueSize: 0,
    empty: false,
    fetching: null,
    choosingReason: false,
    keyAt: null,
  };
  // Milliseconds from a decision's keypress to the next image decoded and painted.
  window.reviewTimings = [];

  function post(url, pairs) {
    const body = new URLSearchParams(pairs);
    return fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrf },
      body: body,
      credentials: "same-origin",
    });
  }

  function decideUrl(id) {
    return config.decideUrl.replace("00000000-0000-0000-0000-000000000000", id);
  }

  function say(text, kind) {
    const status = $("review-status");
    status.textContent = text;
    status.className = "review-status" + (kind ? " is-" + kind : "");
  }

  function settle() {
    const unsent = (state.pending ? 1 : 0) + state.inflight;
    root.dataset.unsent = String(unsent);
    if (undoButton) undoButton.disabled = !state.pending;
  }

  function held() {
    const ids = state.items.map((item) => item.id);
    state.deciding.forEach((id) => ids.push(id)); // the last decision, and those being sent
    return ids.concat(state.skipped);
  }

  function updateQueue(queue) {
    state.queueSize = queue.size;
    $("review-queue-size").textContent = String(queue.size);
    $("review-oldest").textContent = queue.oldest || "–";
  }

  function whenLoaded(element) {
    const images = Array.from(element.querySelectorAll("img"));
    return Promise.all(
      images.map((img) =>
        img.complete
          ? img.decode().catch(() => null)
          : new Promise((resolve) => {
              img.addEventListener("load", () => img.decode().then(resolve, resolve), { once: true });
              img.addEventListener("error", resolve, { once: true });
            })
      )
    );
  }

  function fetchNext() {
    if (state.fetching) return state.fetching;
    const pairs = held().map((id) => ["exclude", id]);
    const sentDeciding = new Set(state.deciding);
    sentDeciding.forEach((id) => pairs.push(["deciding", id]));
    state.fetching = post(config.nextUrl, pairs)
      .then((response) => {
        if (!response.ok) throw new Error("the server answered " + response.status);
        return response.json();
      })
      .then((body) => {
        // Decisions made while the request was under way are not in its count yet.
        const since = Array.from(state.deciding).filter((id) => !sentDeciding.has(id));
        updateQueue({ size: body.queue.size - since.length, oldest: body.queue.oldest });
        if (!body.item) {
          state.empty = true;
          return null;
        }
        const holder = document.createElement("div");
        holder.innerHTML = body.item.html;
        const element = holder.firstElementChild;
        preload.appendChild(element); // the browser loads and decodes it while hidden
        const item = { id: body.item.id, md5: body.item.md5, element: element };
        item.ready = whenLoaded(element);
        state.items.push(item);
        return item;
      })
      .catch((error) => {
        say("Could not load the next image: " + error.message, "error");
        return null;
      })
      .finally(() => {
        state.fetching = null;
      });
    return state.fetching;
  }

  function fillPreload() {
    if (state.items.length > AHEAD || state.empty) return;
    fetchNext().then((item) => {
      if (!current.firstElementChild) {
        if (item) show();
        else if (state.empty) showEmpty();
      }
      if (item) fillPreload();
    });
  }

  function position() {
    const total = state.done + Math.max(state.queueSize, state.items.length);
    $("review-queue-size").textContent = String(Math.max(state.queueSize, 0));
    $("review-position").textContent = state.items.length
      ? state.done + 1 + " of " + total + " ·"
      : "";
  }

  function show() {
    Array.from(current.children).forEach((child) => preload.appendChild(child));
    const item = state.items[0];
    position();
    if (!item) {
      if (state.empty) showEmpty();
      else if (!state.fetching) fetchNext().then((next) => (next ? show() : showEmpty()));
      return; // else the fetch under way shows what it brings
    }
    $("review-empty").hidden = true;
    current.appendChild(item.element);
    root.dataset.current = item.id;
    const keyAt = state.keyAt;
    state.keyAt = null;
    if (keyAt !== null) {
      item.ready.then(() =>
        requestAnimationFrame(() =>
          requestAnimationFrame(() => window.reviewTimings.push(performance.now() - keyAt))
        )
      );
    }
    fillPreload();
  }

  function showEmpty() {
    root.dataset.current = "";
    current.replaceChildren();
    $("review-empty").hidden = false;
    $("review-skipped-note").textContent = state.skipped.length
      ? "You skipped " + state.skipped.length + "; look again to see them."
      : "";
    position();
  }

  function send(decision) {
    if (!decision || decision.sent) return;
    decision.sent = true;
    clearTimeout(decision.timer);
    if (state.pending === decision) state.pending = null;
    state.inflight += 1;
    settle();
    const id = decision.item.id;
    post(decideUrl(decision.item.id), decision.fields)
      .then((response) =>
        response
          .json()
          .catch(() => ({ message: "the server answered " + response.status }))
          .then((body) => {
            if (!response.ok) say(body.message, "error");
          })
      )
      .catch((error) => say("The decision was not sent: " + error.message, "error"))
      .finally(() => {
        state.inflight -= 1;
        state.deciding.delete(id);
        settle();
      });
  }

  function decide(fields, label, event) {
    const item = state.items.shift();
    if (!item) return;
    state.keyAt = event ? event.timeStamp : performance.now();
    send(state.pending); // only the last decision can be undone
    const decision = { item: item, fields: fields, sent: false };
    decision.timer = setTimeout(() => send(decision), undoMs);
    state.pending = decision;
    state.deciding.add(item.id);
    state.done += 1;
    state.queueSize -= 1;
    item.element.remove();
    say(label + " " + item.md5.slice(0, 8) + "… · u to undo", "done");
    settle();
    show();
  }

  function undo() {
    const decision = state.pending;
    if (!decision) {
      say("Nothing to undo: decisions are applied after " + undoMs / 1000 + " seconds.");
      return;
    }
    clearTimeout(decision.timer);
    state.pending = null;
    state.deciding.delete(decision.item.id);
    state.done -= 1;
    state.queueSize += 1;
    state.items.unshift(decision.item);
    preload.appendChild(decision.item.element);
    say("Undone: " + decision.item.md5.slice(0, 8) + "… is back.", "done");
    settle();
    show();
  }

  function skip(event) {
    const item = state.items.shift();
    if (!item) return;
    state.keyAt = event ? event.timeStamp : performance.now();
    state.skipped.push(item.id);
    item.element.remove();
    if (canDecide) post(config.releaseUrl, [["id", item.id]]);
    show();
  }

  function chooseReason(open) {
    state.choosingReason = open;
    reasons.hidden = !open;
    if (!open) $("review-other-note").blur();
  }

  function reject(reason, note, event) {
    chooseReason(false);
    decide(
      [
        ["action", "reject"],
        ["reason", reason],
        ["note", note || ""],
      ],
      "Rejected",
      event
    );
  }

  function toggleZoom() {
    const frame = current.querySelector(".review-frame");
    if (frame) frame.classList.toggle("is-zoomed");
  }

  function reveal() {
    current.querySelectorAll(".is-blurred").forEach((frame) => frame.classList.remove("is-blurred"));
  }

  function toggleHelp() {
    if (help.open) help.close();
    else help.showModal();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select")) {
      if (event.key === "Escape") chooseReason(false);
      return;
    }
    if (help.open && event.key !== "?") return;
    const key = event.key;
    if (state.choosingReason) {
      const buttons = reasons.querySelectorAll("button[data-reason]");
      const digit = Number(key);
      if (digit >= 1 && digit <= buttons.length) {
        reject(buttons[digit - 1].dataset.reason, "", event);
      } else if (key === "o") {
        $("review-other-note").focus(); // type the reason, Enter rejects
      } else if (key === "Escape" || key === "r") {
        chooseReason(false);
      }
      event.preventDefault();
      return;
    }
    const actions = {
      a: () => canDecide && decide([["action", "approve"]], "Approved", event),
      r: () => canDecide && state.items.length && chooseReason(true),
      s: () => skip(event),
      u: () => canDecide && undo(),
      z: toggleZoom,
      v: reveal,
      "?": toggleHelp,
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  }

  document.addEventListener("keydown", onKey);
  root.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button && button.dataset.key) {
      onKey({ key: button.dataset.key, target: root, timeStamp: performance.now(), preventDefault() {} });
    } else if (button && button.dataset.reason) {
      reject(button.dataset.reason, "", null);
    } else if (button && button.classList.contains("review-reveal")) {
      reveal();
    } else if (event.target.classList.contains("review-image") && !event.target.closest(".is-blurred")) {
      toggleZoom();
    }
  });
  const other = $("review-other");
  if (other) {
    other.addEventListener("submit", (event) => {
      event.preventDefault();
      const note = $("review-other-note");
      if (!note.value.trim()) {
        note.focus();
        return;
      }
      reject("Other", note.value, null);
      note.value = "";
    });
  }

  // Keep the claims of what is loaded; give them back, and send the last decision, on leaving.
  setInterval(() => {
    const ids = state.items.map((item) => ["id", item.id]);
    if (canDecide && ids.length) post(config.renewUrl, ids);
  }, renewMs);
  window.addEventListener("pagehide", () => {
    const decision = state.pending;
    if (decision && !decision.sent) {
      const form = new FormData();
      form.append("csrfmiddlewaretoken", csrf);
      decision.fields.forEach(([name, value]) => form.append(name, value));
      navigator.sendBeacon(decideUrl(decision.item.id), form);
      decision.sent = true;
    }
    if (canDecide && state.items.length) {
      const form = new FormData();
      form.append("csrfmiddlewaretoken", csrf);
      state.items.forEach((item) => form.append("id", item.id));
      navigator.sendBeacon(config.releaseUrl, form);
    }
  });

  settle();
  fetchNext().then((item) => (item ? show() : showEmpty()));
})();
