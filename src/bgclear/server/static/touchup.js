// Keep / remove clicks on a cutout, a 100 % zoom and a before / after slider.
//
// Clicks are kept in the photo's own pixels (after EXIF orientation, as the server reads
// them), whatever the zoom. Each change sends every point so far to POST /v1/remove/{edit_id},
// where the server holds the photo; when it no longer does (404 edit_expired: expired,
// evicted, or another replica answered) the photo is sent again with all the points, which
// answers a new handle. At most one request is in flight: clicks made meanwhile go in the next.

const $ = (sel, root) => root.querySelector(sel);

/** Where a pointer event falls on ``img``, in the pixels of a ``width`` x ``height`` source, or
 * null outside the picture. The picture may be letterboxed inside the element (object-fit: contain). */
function toSource(event, img, width, height) {
  const box = img.getBoundingClientRect();
  const k = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
  const shownW = img.naturalWidth * k;
  const shownH = img.naturalHeight * k;
  const fx = (event.clientX - box.left - (box.width - shownW) / 2) / shownW;
  const fy = (event.clientY - box.top - (box.height - shownH) / 2) / shownH;
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1)) return null;
  return { x: Math.min(width - 1, Math.floor(fx * width)), y: Math.min(height - 1, Math.floor(fy * height)) };
}

/**
 * Wire the touch-up controls of one item. ``api`` holds the page's helpers (postWithRetry,
 * toBlobUrl, refreshPreview, fullPng, showProblem, apiKey). Returns the item's touch-up state, whose
 * ``request(params, progress)`` every cutout request of the item goes through.
 */
export function setUpTouchUp(item, api) {
  const el = item.el;
  const frame = $(".frame", el);
  const img = $(".cutout", el);
  const busy = $(".busy", el);
  const touch = {
    mode: null, // "keep" | "drop" | null
    points: [], // {kind, x, y} in source pixels
    editId: null,
    width: 0,
    height: 0,
    version: 0, // bumped by every change of the points
    inFlight: false,

    /** [name, value] form fields for the points so far. */
    fields() {
      return this.points.map((p) => [p.kind, `${p.x},${p.y}`]);
    },

    /** A cutout of the item with the points so far: through the edit handle when there is one,
     * else (or when the server no longer holds the photo) with the photo itself. */
    async request(params, progress = () => {}) {
      const fields = this.fields();
      if (this.editId) {
        try {
          return await api.postWithRetry(item, params, progress,
            { path: `/v1/remove/${encodeURIComponent(this.editId)}`, fields, upload: false });
        } catch (err) {
          if (err.code !== "edit_expired") throw err;
          this.editId = null; // this server does not hold the photo (any more): send it again
        }
      }
      const res = await api.postWithRetry(item, { ...params, edit: "true" }, progress, { fields });
      this.editId = res.header("X-Edit-Id");
      el.dataset.editId = this.editId || "";
      this.width = Number(res.header("X-Source-Width"));
      this.height = Number(res.header("X-Source-Height"));
      return res;
    },

    /** Tell the server it may drop the photo now (the item left the page). */
    forget() {
      const headers = api.apiKey() ? { "X-Api-Key": api.apiKey() } : {};
      if (this.editId) fetch(`/v1/remove/${encodeURIComponent(this.editId)}`, { method: "DELETE", headers }).catch(() => {});
      this.editId = null;
    },
  };

  function drawMarkers() {
    const layer = $(".markers", el);
    layer.replaceChildren(...touch.points.map((p, i) => {
      const dot = document.createElement("span");
      dot.className = `marker marker-${p.kind}`;
      dot.style.left = `${((p.x + 0.5) / touch.width) * 100}%`;
      dot.style.top = `${((p.y + 0.5) / touch.height) * 100}%`;
      dot.title = `${p.kind === "keep" ? "Keep" : "Remove"} ${i + 1} (${p.x}, ${p.y})`;
      return dot;
    }));
    $(".undo", el).disabled = touch.points.length === 0;
    $(".reset", el).disabled = touch.points.length === 0;
  }

  function zoomed() {
    return $(".stage", el).classList.contains("zoomed");
  }

  /** Bring the preview up to date with the points, one request at a time. */
  async function sync() {
    if (touch.inFlight) return; // the request in flight picks the change up when it returns
    touch.inFlight = true;
    busy.textContent = "Updating the cutout…";
    busy.hidden = false;
    el.classList.add("updating");
    let refused = false;
    try {
      for (let sent = -1; sent !== touch.version && !item.removed;) {
        sent = touch.version;
        // Every other image of the item is out of date now; the downloads fetch their own.
        item.png = null;
        item.shadowPng = null;
        const full = zoomed(); // at 100 % the edges are inspected: the full-resolution result
        const res = await touch.request({ format: "png", ...(full ? {} : { size: "preview" }),
          ...(item.shadowOn ? { shadow: "true" } : {}) });
        if (sent !== touch.version || item.removed) continue;
        item.view = api.toBlobUrl(res.blob);
        if (full) item[item.shadowOn ? "shadowPng" : "png"] = item.view;
        $(".error", el).hidden = true;
        api.refreshPreview(item);
      }
    } catch (err) {
      if (!item.removed) api.showProblem(item, "Could not apply the clicks", err);
      refused = err.code === "invalid_option" && touch.points.length > 0;
    } finally {
      touch.inFlight = false;
      busy.hidden = true;
      el.classList.remove("updating");
    }
    if (refused && !item.removed) undo(); // the server refused the last click: take it back
  }

  function change(points) {
    touch.points = points;
    touch.version += 1;
    drawMarkers();
    sync();
  }

  function undo() {
    change(touch.points.slice(0, -1));
  }

  function setMode(mode) {
    touch.mode = touch.mode === mode ? null : mode;
    for (const button of el.querySelectorAll(".mode")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === touch.mode));
    }
    frame.classList.toggle("clickable", touch.mode !== null);
  }

  async function setZoom(on) {
    const stage = $(".stage", el);
    const button = $(".zoom", el);
    button.setAttribute("aria-pressed", String(on));
    stage.classList.toggle("zoomed", on);
    if (on) {
      busy.textContent = "Loading the full-resolution cutout…";
      busy.hidden = false;
      try {
        item.view = await api.fullPng(item);
        api.refreshPreview(item);
      } catch (err) {
        api.showProblem(item, "Could not load the full-resolution cutout", err);
      } finally {
        busy.hidden = true;
      }
    }
    // One pixel of the photo per pixel of the screen.
    img.style.width = on ? `${touch.width / window.devicePixelRatio}px` : "";
  }

  frame.addEventListener("click", (event) => {
    if (!touch.mode || !item.view || !touch.width) return;
    const at = toSource(event, img, touch.width, touch.height);
    if (at) change([...touch.points, { kind: touch.mode, ...at }]);
  });
  for (const button of el.querySelectorAll(".mode")) {
    button.addEventListener("click", () => setMode(button.dataset.mode));
  }
  $(".undo", el).addEventListener("click", undo);
  $(".reset", el).addEventListener("click", () => change([]));
  $(".zoom", el).addEventListener("click", () => setZoom(!zoomed()));

  const overlay = $(".overlay", el);
  const divider = $(".divider", el);
  overlay.src = $(".original", el).src;
  $(".compare", el).addEventListener("input", (event) => {
    const shown = Number(event.target.value);
    overlay.hidden = shown === 0;
    divider.hidden = shown === 0 || shown === 100;
    overlay.style.clipPath = `inset(0 ${100 - shown}% 0 0)`;
    divider.style.left = `${shown}%`;
  });
  return touch;
}
