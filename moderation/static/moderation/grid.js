// Grid triage: arrow keys move between tiles, x or Space selects, * selects all, a approves
// and r then a digit rejects the selection (or the tile in focus). The server asks for a
// confirmation when more than one image is chosen.
(function () {
  "use strict";

  const form = document.getElementById("review-grid");
  const list = document.getElementById("review-tiles");
  if (!form || !list) return;
  const tiles = Array.from(list.querySelectorAll(".review-tile"));
  const reasons = Array.from(document.querySelectorAll("#grid-reasons [data-reason]"));
  let choosingReason = false;

  function focused() {
    return tiles.indexOf(document.activeElement.closest(".review-tile"));
  }

  function columns() {
    const top = tiles[0].offsetTop;
    const inFirstRow = tiles.filter((tile) => tile.offsetTop === top).length;
    return Math.max(1, inFirstRow);
  }

  function move(by) {
    const index = Math.min(tiles.length - 1, Math.max(0, focused() + by));
    tiles[index].focus();
  }

  function boxes() {
    return tiles.map((tile) => tile.querySelector("input[type=checkbox]"));
  }

  function chooseFocusedIfNone() {
    if (boxes().some((box) => box.checked)) return;
    const index = focused();
    if (index >= 0) boxes()[index].checked = true;
  }

  function submit(action) {
    chooseFocusedIfNone();
    const button = form.querySelector('button[name=action][value="' + action + '"]');
    if (button) form.requestSubmit(button);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input[type=text], select, textarea")) return;
    const key = event.key;
    if (choosingReason) {
      choosingReason = false;
      const reason = reasons[Number(key) - 1];
      if (reason) {
        form.querySelector("select[name=reason]").value = reason.dataset.reason;
        submit("reject");
      }
      event.preventDefault();
      return;
    }
    const actions = {
      ArrowRight: () => move(1),
      ArrowLeft: () => move(-1),
      ArrowDown: () => move(columns()),
      ArrowUp: () => move(-columns()),
      x: () => focused() >= 0 && boxes()[focused()].click(),
      " ": () => focused() >= 0 && boxes()[focused()].click(),
      "*": () => {
        const all = !boxes().every((box) => box.checked);
        boxes().forEach((box) => (box.checked = all));
      },
      a: () => submit("approve"),
      r: () => (choosingReason = true),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });

  list.addEventListener("change", (event) => {
    const tile = event.target.closest(".review-tile");
    if (tile) tile.classList.toggle("is-selected", event.target.checked);
  });
  list.addEventListener("click", (event) => {
    const picture = event.target.closest(".is-blurred");
    if (picture) {
      event.preventDefault(); // the first click reveals, the next one opens
      picture.classList.remove("is-blurred");
    }
  });
  if (tiles.length) tiles[0].focus();
})();
