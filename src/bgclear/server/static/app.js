// The bgclear web page: uploads each file to POST /v1/remove (one at a time,
// as the server works through a queue anyway), shows the cutout and offers
// downloads; touchup.js adds keep / remove clicks. Plain JS, no build step, nothing loaded from other sites.
import { setUpTouchUp } from "./touchup.js";
import { makeZip } from "./zip.js";

const PRESETS = [
  { id: "transparent", label: "Transparent (checkerboard)", color: null },
  { id: "white", label: "White", color: "#ffffff" },
  { id: "black", label: "Black", color: "#000000" },
  { id: "red", label: "Red", color: "#d32f2f" },
  { id: "blue", label: "Blue", color: "#1976d2" },
  { id: "green", label: "Green", color: "#2e7d32" },
  { id: "yellow", label: "Yellow", color: "#fbc02d" },
];
const MAX_PARALLEL = 1;
const MAX_RETRIES = 30;
// The API key, when the server asks for one, lives in sessionStorage: this tab only, gone when it closes.
const KEY_STORE = "bgclear-api-key";
const FORMAT_NAMES = { WEBP: "WebP", HEIF: "HEIC" };

const $ = (sel, root = document) => root.querySelector(sel);
const items = [];
const waiting = [];
let running = 0;
let nextId = 1;
let limits = { max_bytes: 10_000_000, max_pixels: 40_000_000 };

class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const mb = (bytes) => (bytes < 100_000
  ? `${Math.max(1, Math.round(bytes / 1000))} kB`
  : `${(bytes / 1e6).toFixed(1).replace(/\.0$/, "")} MB`);
const stem = (name) => (name.replace(/\.[^.]+$/, "") || "image").replace(/[\\/:*?"<>|]+/g, "_");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- server status -------------------------------------------------------

async function watchServer() {
  const status = $("#server-status");
  for (;;) {
    try {
      const res = await fetch("/healthz", { cache: "no-store" });
      const body = await res.json();
      limits = body;
      const names = (body.accepted_formats || ["JPEG", "PNG", "WEBP"]).map((f) => FORMAT_NAMES[f] || f);
      $("#limits").textContent = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}, up to ${mb(body.max_bytes)} `
        + `and ${Math.round(body.max_pixels / 1e6)} megapixels per image.`;
      if (body.auth_required && !apiKey()) askForKey("This server needs an API key: enter it to remove backgrounds.");
      if (body.status === "ready") {
        status.textContent = "Ready.";
        status.classList.remove("bad");
        return;
      }
      status.textContent = body.status === "failed"
        ? `The server cannot process images: ${body.detail}`
        : "The model is loading; you can add images already.";
      status.classList.toggle("bad", body.status === "failed");
      if (body.status === "failed") return;
    } catch {
      status.textContent = "The server cannot be reached.";
      status.classList.add("bad");
    }
    await sleep(1000);
  }
}

// ---- the API key ------------------------------------------------------------

const keyWaiters = [];
const apiKey = () => sessionStorage.getItem(KEY_STORE);

/** Show the key form; resolves once the user has entered a key. */
function askForKey(message) {
  $("#key-note").textContent = message;
  $("#key-form").hidden = false;
  $("#api-key").focus();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

function setUpKeyForm() {
  $("#key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("#api-key").value = "";
    $("#key-form").hidden = true;
    keyWaiters.splice(0).forEach((resolve) => resolve(key));
  });
}

// ---- talking to the API ----------------------------------------------------

/** POST the item's file (or, with ``upload: false``, only ``fields``) to ``path``; ``fields`` are
 * [name, value] pairs sent as form fields (repeatable, e.g. several "keep" points). */
function post(item, params, onUploadProgress, { path = "/v1/remove", fields = [], upload = true } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", `${path}?${new URLSearchParams(params)}`);
    if (apiKey()) xhr.setRequestHeader("X-Api-Key", apiKey());
    xhr.responseType = "blob";
    xhr.upload.onprogress = (e) => e.lengthComputable && onUploadProgress(e.loaded / e.total);
    xhr.upload.onload = () => onUploadProgress(1);
    xhr.onload = async () => {
      if (xhr.status === 200) {
        resolve({ blob: xhr.response, header: (h) => xhr.getResponseHeader(h) });
        return;
      }
      const retryAfter = Number(xhr.getResponseHeader("Retry-After") || 0);
      try {
        const { error } = JSON.parse(await xhr.response.text());
        reject(new ApiError(xhr.status, error.code, error.message, retryAfter));
      } catch {
        reject(new ApiError(xhr.status, "http", `the server answered with status ${xhr.status}`, retryAfter));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the server could not be reached; check that it is running and try again"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "cancelled"));
    const form = new FormData();
    if (upload) form.append("image_file", item.file);
    for (const [name, value] of fields) form.append(name, value);
    xhr.send(form);
  });
}

/** POST with retries while the server says it is busy or loading (503), or over its rate limit
 * (429), after Retry-After; on 403 it asks for a key (again) and retries with it. */
async function postWithRetry(item, params, onUploadProgress, request = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await post(item, params, onUploadProgress, request);
    } catch (err) {
      if (err.status === 403 && !item.removed) {
        sessionStorage.removeItem(KEY_STORE);
        setState(item, "Waiting for an API key…");
        await askForKey(apiKeyProblem(err));
        continue;
      }
      const retryable = err.status === 503 || (err.status === 429 && err.retryAfter <= 60);
      if (!retryable || attempt >= MAX_RETRIES || item.removed) throw err;
      const wait = Math.max(1, err.retryAfter || 2);
      const why = { loading: "Model loading", rate_limited: "Rate limit reached" }[err.code] || "Server busy";
      setState(item, `${why}; retrying in ${wait} s…`);
      await sleep(wait * 1000);
    }
  }
}

function apiKeyProblem(err) {
  return err.code === "invalid_api_key" ? "The server refused this API key: check it and enter it again."
    : "This server needs an API key: enter it to remove backgrounds.";
}

// ---- items -----------------------------------------------------------------

function setState(item, text, progress) {
  $(".state", item.el).textContent = text;
  const bar = $("progress", item.el);
  if (progress === undefined) bar.removeAttribute("value");
  else bar.value = Math.round(progress * 100);
}

function showError(item, message) {
  item.el.classList.add("failed");
  item.el.classList.add("done");
  const box = $(".error", item.el);
  box.textContent = `Could not remove the background: ${message}`;
  box.hidden = false;
  setState(item, "Failed");
}

function showWarnings(item, header) {
  let warnings = [];
  try { warnings = JSON.parse(header || "[]"); } catch { /* a missing header is no warning */ }
  const list = $(".warnings", item.el);
  list.replaceChildren(...warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  list.hidden = warnings.length === 0;
}

/** The full-resolution PNG of what the preview shows (shadow, touch-up points), or null when not fetched yet. */
function currentPng(item) {
  return item.shadowOn ? item.shadowPng : item.png;
}

/** currentPng, fetched first when missing (after a click the preview is a smaller image). */
async function fullPng(item) {
  if (!currentPng(item)) {
    const res = await item.touch.request({ format: "png", ...(item.shadowOn ? { shadow: "true" } : {}) });
    item[item.shadowOn ? "shadowPng" : "png"] = toBlobUrl(res.blob);
  }
  return currentPng(item);
}

function refreshPreview(item) {
  const png = currentPng(item);
  $(".cutout", item.el).src = (item.view || png).url;
  const link = $(".download-png", item.el);
  link.href = png ? png.url : "#";
  link.download = `${stem(item.file.name)}-cutout${item.shadowOn ? "-shadow" : ""}.png`;
}

/** Say that ``what`` failed, under the picture, without failing the item. */
function showProblem(item, what, err) {
  const box = $(".error", item.el);
  box.textContent = `${what}: ${err.message}`;
  box.hidden = false;
}

function setBackground(item, color, photo = null) {
  item.bg = color;
  if (item.bgPhoto) URL.revokeObjectURL(item.bgPhoto.url);
  item.bgPhoto = photo ? { file: photo, url: URL.createObjectURL(photo) } : null;
  const stage = $(".stage", item.el);
  stage.classList.toggle("bg-transparent", color === null && !photo);
  stage.style.backgroundColor = color || "";
  // The preview composites in the browser: the photo behind the cutout, covering it and centred
  // (as the server's bg_image_file); the JPG download does the same at full resolution.
  $(".cutout", item.el).style.background = photo ? `url("${item.bgPhoto.url}") center / cover no-repeat` : "";
  const chip = $(".swatch.photo span", item.el);
  chip.style.backgroundImage = photo ? `url("${item.bgPhoto.url}")` : "";
  chip.parentElement.classList.toggle("chosen", Boolean(photo));
}

/** "Your own background photo": a file input beside the colours. */
function buildPhotoSwatch(item, box) {
  const label = document.createElement("label");
  label.className = "swatch photo";
  label.title = "Your own background photo";
  label.innerHTML = `<input type="file" accept="image/jpeg,image/png,image/webp,image/avif,image/gif,image/bmp">`
    + `<span aria-hidden="true">Your photo…</span>`;
  const input = $("input", label);
  input.setAttribute("aria-label", "Your own background photo");
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    try {
      (await createImageBitmap(file)).close(); // the browser must read it to show and compose it
    } catch {
      const note = $(".error", item.el);
      note.textContent = `This browser cannot read ${file.name || "that file"} as a picture: choose a JPEG, PNG or WebP photo.`;
      note.hidden = false;
      return;
    }
    $(".error", item.el).hidden = true;
    box.querySelectorAll("input[type=radio]").forEach((r) => { r.checked = false; });
    setBackground(item, null, file);
  });
  box.append(label);
}

function buildSwatches(item) {
  const box = $(".swatches", item.el);
  const group = `bg-${item.id}`;
  for (const preset of PRESETS) {
    const label = document.createElement("label");
    label.className = "swatch";
    label.title = preset.label;
    label.innerHTML = `<input type="radio" name="${group}" value="${preset.id}"><span></span>`;
    const input = $("input", label);
    input.setAttribute("aria-label", preset.label);
    input.checked = preset.color === null;
    const dot = $("span", label);
    if (preset.color) dot.style.background = preset.color;
    else dot.classList.add("transparent");
    input.addEventListener("change", () => setBackground(item, preset.color));
    box.append(label);
  }
  const custom = document.createElement("label");
  custom.className = "swatch custom";
  custom.title = "Custom colour";
  custom.innerHTML = `<input type="color" value="#80cbc4" aria-label="Custom background colour">`;
  const picker = $("input", custom);
  picker.addEventListener("input", () => {
    box.querySelectorAll("input[type=radio]").forEach((r) => { r.checked = false; });
    setBackground(item, picker.value);
  });
  box.append(custom);
  buildPhotoSwatch(item, box);
}

function toBlobUrl(blob) {
  return { blob, url: URL.createObjectURL(blob) };
}

async function process(item) {
  setState(item, "Uploading…", 0);
  try {
    const res = await item.touch.request({ format: "png" }, (f) => {
      setState(item, f < 1 ? `Uploading… ${Math.round(f * 100)}%` : "Removing the background…", f < 1 ? f : undefined);
    });
    if (item.removed) return;
    item.png = toBlobUrl(res.blob);
    item.view = item.png;
    const w = res.header("X-Width");
    const h = res.header("X-Height");
    showWarnings(item, res.header("X-Warnings"));
    item.el.classList.add("done");
    $(".result", item.el).hidden = false;
    refreshPreview(item);
    setState(item, `Done: ${w} × ${h} px, transparent PNG ${mb(res.blob.size)}`);
    $("#batch").hidden = false;
  } catch (err) {
    if (!item.removed) showError(item, err.message);
  }
}

async function toggleShadow(item, on) {
  item.shadowOn = on;
  if (!currentPng(item)) {
    const busy = $(".busy", item.el);
    busy.textContent = on ? "Adding shadow…" : "Updating…";
    busy.hidden = false;
    try {
      await fullPng(item);
    } catch (err) {
      item.shadowOn = !on;
      $(".shadow", item.el).checked = !on;
      showProblem(item, on ? "Could not add the shadow" : "Could not remove the shadow", err);
    } finally {
      busy.hidden = true;
    }
  }
  item.view = currentPng(item) || item.view;
  refreshPreview(item);
}

/** Draw ``image`` over the whole canvas, scaled to cover it and centred (CSS background-size: cover). */
function drawCover(ctx, image, width, height) {
  const k = Math.max(width / image.width, height / image.height);
  const w = width / k;
  const h = height / k;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(image, (image.width - w) / 2, (image.height - h) / 2, w, h, 0, 0, width, height);
}

async function flattenToJpeg(blob, color, photo = null) {
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  if (photo) {
    const picture = await createImageBitmap(photo);
    drawCover(ctx, picture, canvas.width, canvas.height);
    picture.close();
  } else {
    ctx.fillStyle = color;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

function saveBlob(blob, name) {
  const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function addItem(file) {
  const el = $("#item-template").content.firstElementChild.cloneNode(true);
  const item = { id: nextId++, file, el, bg: null, shadowOn: false, png: null, shadowPng: null, view: null };
  items.push(item);
  el.dataset.id = item.id;
  $(".name", el).textContent = file.name || "pasted image";
  $(".meta", el).textContent = mb(file.size);
  $(".original", el).src = URL.createObjectURL(file);
  buildSwatches(item);
  item.touch = setUpTouchUp(item, { postWithRetry, toBlobUrl, refreshPreview, fullPng, showProblem, apiKey });
  $(".remove", el).addEventListener("click", () => removeItem(item));
  const beforeAfter = $(".before-after", el);
  beforeAfter.addEventListener("click", () => {
    const showOriginal = beforeAfter.getAttribute("aria-pressed") !== "true";
    beforeAfter.setAttribute("aria-pressed", String(showOriginal));
    beforeAfter.textContent = showOriginal ? "Show cutout" : "Show original";
    $(".original", el).hidden = !showOriginal;
    $(".frame", el).hidden = showOriginal;
  });
  $(".shadow", el).addEventListener("change", (e) => toggleShadow(item, e.target.checked));
  const link = $(".download-png", el);
  link.addEventListener("click", async (e) => {
    if (currentPng(item)) return; // the link holds the full-resolution PNG already
    e.preventDefault();
    if (await whileBusy(item, "Preparing the full-resolution PNG…", () => fullPng(item))) {
      refreshPreview(item);
      link.click();
    }
  });
  $(".download-jpg", el).addEventListener("click", async () => {
    const png = await whileBusy(item, "Preparing the full-resolution JPG…", () => fullPng(item));
    if (!png) return;
    const jpg = await flattenToJpeg(png.blob, item.bg || "#ffffff", item.bgPhoto?.file);
    saveBlob(jpg, `${stem(file.name)}-cutout.jpg`);
  });
  $("#results").append(el);
  $("#drop").classList.add("compact");

  if (file.size > limits.max_bytes) {
    showError(item, `the file is ${mb(file.size)}; the limit is ${mb(limits.max_bytes)} per image. Save a smaller version (for example as JPEG) and add it again.`);
    return;
  }
  setState(item, "Waiting…", 0);
  waiting.push(item);
  pump();
}

/** Run ``work`` with the busy note on the picture; its result, or null (the problem shown) when it failed. */
async function whileBusy(item, note, work) {
  const busy = $(".busy", item.el);
  busy.textContent = note;
  busy.hidden = false;
  try {
    return await work();
  } catch (err) {
    showProblem(item, "Could not prepare the download", err);
    return null;
  } finally {
    busy.hidden = true;
  }
}

function removeItem(item) {
  item.removed = true;
  if (item.xhr && item.xhr.readyState !== XMLHttpRequest.DONE) item.xhr.abort();
  item.touch.forget();
  for (const png of [item.png, item.shadowPng, item.view, item.bgPhoto]) if (png) URL.revokeObjectURL(png.url);
  URL.revokeObjectURL($(".original", item.el).src);
  item.el.remove();
  items.splice(items.indexOf(item), 1);
  $("#batch").hidden = !items.some((i) => i.view);
  $("#drop").classList.toggle("compact", items.length > 0);
}

async function pump() {
  while (running < MAX_PARALLEL && waiting.length) {
    const item = waiting.shift();
    if (item.removed) continue;
    running++;
    process(item).finally(() => { running--; pump(); });
  }
}

async function downloadAll() {
  const used = new Set();
  const files = [];
  for (const item of items.filter((i) => i.view)) {
    let name = `${stem(item.file.name)}-cutout.png`;
    for (let n = 2; used.has(name); n++) name = `${stem(item.file.name)}-cutout-${n}.png`;
    used.add(name);
    files.push({ name, data: new Uint8Array(await (await fullPng(item)).blob.arrayBuffer()) });
  }
  if (files.length) saveBlob(makeZip(files), "bgclear-cutouts.zip");
}

function addFiles(fileList) {
  for (const file of fileList) addItem(file);
}

function setUpInput() {
  const input = $("#file-input");
  const drop = $("#drop");
  $("#pick").addEventListener("click", () => input.click());
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  // Dropping anywhere on the page adds the files instead of navigating away.
  window.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  window.addEventListener("dragleave", (e) => { if (!e.relatedTarget) drop.classList.remove("dragging"); });
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("dragging");
    if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
  });
  window.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) addFiles(files);
  });
  $("#download-all").addEventListener("click", downloadAll);
  $("#clear-all").addEventListener("click", () => [...items].forEach(removeItem));
}

setUpInput();
setUpKeyForm();
watchServer();
