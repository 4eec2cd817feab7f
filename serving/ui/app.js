// ganzoo gallery: plain JavaScript over the service's public HTTP API, nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
const METRICS = {
  fid: ["FID", "Fréchet distance to real test images in a classifier's features; lower is better"],
  precision: ["precision", "share of samples that look like real data"],
  recall: ["recall", "share of the real data's variety the samples cover"],
  one_nn_acc: ["1-NN accuracy", "0.5 means samples and real images cannot be told apart"],
  label_acc: ["class accuracy", "share of samples a classifier puts in the class asked for"],
  recon_mse: ["reconstruction MSE", "pixel error of encode then generate; lower is better"],
  recon_class_acc: ["reconstruction class accuracy", "reconstructions keep the digit's class"],
  a2b_is_orange: ["apple→orange judged orange", "share of translated apples a classifier calls orange"],
  b2a_is_apple: ["orange→apple judged apple", "share of translated oranges a classifier calls apple"],
};
let models = [];
let current = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// Fetch a URL; a non-2xx answer throws the API's own {"error"} message.
async function call(url, options) {
  const resp = await fetch(url, options);
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return resp;
}

async function showImage(img, url, options) {
  showError("");
  img.dataset.state = "loading";
  try {
    const resp = await call(url, options);
    const blob = await resp.blob();
    if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
    const src = URL.createObjectURL(blob);
    img.dataset.blob = src;
    img.dataset.url = url;
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error("the answer is not an image the browser can show"));
      img.src = src;
    });
    if (img.dataset.zoom) {  // small model outputs: scale up by a whole factor, kept pixelated
      const factor = Math.max(1, Math.floor(Number(img.dataset.zoom) / img.naturalWidth));
      img.style.width = `${img.naturalWidth * factor}px`;
    }
    img.dataset.state = "done";
    return resp;
  } catch (err) {
    img.dataset.state = "error";
    showError(err.message);
    return null;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

function fillClasses(select, m, blank) {
  select.replaceChildren();
  const none = document.createElement("option");
  none.value = "";
  none.textContent = blank;
  select.append(none);
  const names = m.classes.length ? m.classes : [...Array(m.num_classes).keys()].map(String);
  names.forEach((name) => {
    const opt = document.createElement("option");
    opt.value = String(name);
    opt.textContent = String(name);
    select.append(opt);
  });
}

function describe(m) {
  const colour = m.channels === 1 ? "greyscale" : "colour";
  const parts = [`${m.variant} (${m.task}) trained on ${m.dataset || "unknown data"}`];
  if (m.steps) parts[0] += ` for ${m.steps.toLocaleString("en")} steps`;
  if (m.image_size) parts.push(`${m.image_size}×${m.image_size} ${colour} images`);
  if (m.conditional) parts.push(`${m.num_classes} classes: ${m.classes.join(", ")}`);
  if (m.directions.length) parts.push(`directions: ${m.directions.join(", ")}`);
  parts.push(`runs on ${m.provider} in ${m.precision}`);
  $("model-card").textContent = parts.join("; ") + ".";
  const dl = $("model-metrics");
  dl.replaceChildren();
  for (const [key, [name, words]] of Object.entries(METRICS)) {
    const v = m.metrics[key];
    if (typeof v !== "number") continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = `${Number(v.toPrecision(3))}: ${words}`;
    dl.append(dt, dd);
  }
}

function select(name) {
  current = models.find((m) => m.name === name) || models[0];
  if (!current) return;
  for (const b of $("models").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.model === current.name));
  }
  history.replaceState(null, "", `#${encodeURIComponent(current.name)}`);
  const m = current;
  const can = (c) => m.capabilities.includes(c);
  $("model").hidden = false;
  $("model-name").textContent = m.name;
  describe(m);
  showError("");
  for (const id of ["gen-image", "interp-image", "mix-image", "upload-in-image", "upload-out-image"]) {
    $(id).removeAttribute("src");
    delete $(id).dataset.state;
  }
  $("panel-generate").hidden = !can("generate");
  $("panel-interpolate").hidden = !can("interpolate");
  $("panel-mix").hidden = !can("mix");
  $("gen-label-wrap").hidden = !m.conditional;
  if (m.conditional) fillClasses($("gen-label"), m, "one of each, in turn");
  $("gen-psi-wrap").hidden = !m.psi;
  if (m.style_layers) $("mix-crossover").max = m.style_layers;
  const upload = can("translate") || can("reconstruct");
  $("panel-upload").hidden = !upload;
  $("upload-title").textContent = can("translate") ? "Translate a photo" : "Reconstruct an image";
  $("upload-direction-wrap").hidden = !can("translate");
  $("upload-label-wrap").hidden = can("translate") || !m.conditional;
  if (!can("translate") && m.conditional) fillClasses($("upload-label"), m, "class 0");
  const dirs = $("upload-direction");
  dirs.replaceChildren(...m.directions.map((d) => Object.assign(document.createElement("option"), {
    value: d, textContent: d.replace("2", " → "),
  })));
  if (can("generate")) generate();
}

async function generate() {
  const m = current;
  const random = $("gen-random").checked;
  const params = { model: m.name, n: $("gen-n").value, seed: random ? "" : $("gen-seed").value };
  if (m.conditional) params.label = $("gen-label").value;
  if (m.psi) params.psi = $("gen-psi").value;
  const url = `/generate?${query(params)}`;
  const resp = await showImage($("gen-image"), url);
  if (resp) {
    const seed = resp.headers.get("X-Seed");
    const link = Object.assign(document.createElement("a"), { href: `/generate?${query({ ...params, seed })}`,
      textContent: "link to this grid" });
    $("gen-caption").replaceChildren(`${m.name}, seed ${seed}: `, link);
  }
}

async function interpolate() {
  const params = { model: current.name, seed_a: $("interp-a").value, seed_b: $("interp-b").value,
    steps: $("interp-steps").value, format: "gif" };
  if (current.conditional) params.label = $("gen-label").value;
  if (current.psi) params.psi = $("gen-psi").value;
  await showImage($("interp-image"), `/interpolate?${query(params)}`);
}

async function mix() {
  const params = { model: current.name, seeds: $("mix-seeds").value, styles: $("mix-styles").value,
    crossover: $("mix-crossover").value };
  if (current.psi) params.psi = $("gen-psi").value;
  await showImage($("mix-image"), `/mix?${query(params)}`);
}

async function upload(file) {
  if (!file) return;
  const m = current;
  const inImg = $("upload-in-image");
  if (inImg.dataset.blob) URL.revokeObjectURL(inImg.dataset.blob);
  inImg.dataset.blob = URL.createObjectURL(file);
  inImg.src = inImg.dataset.blob;
  let url;
  if (m.capabilities.includes("translate")) {
    url = `/translate?${query({ model: m.name, direction: $("upload-direction").value })}`;
  } else {
    url = `/reconstruct?${query({ model: m.name, label: m.conditional ? $("upload-label").value : "" })}`;
  }
  const type = file.type || "application/octet-stream";
  const resp = await showImage($("upload-out-image"), url, { method: "POST", headers: { "Content-Type": type },
    body: file });
  if (resp) $("upload-out-caption").textContent = `output of ${url.split("?")[0].slice(1)}`;
}

async function start() {
  $("gen-form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  $("interp-form").addEventListener("submit", (e) => { e.preventDefault(); interpolate(); });
  $("mix-form").addEventListener("submit", (e) => { e.preventDefault(); mix(); });
  $("upload-form").addEventListener("submit", (e) => e.preventDefault());
  $("gen-psi").addEventListener("input", () => { $("gen-psi-out").value = Number($("gen-psi").value).toFixed(2); });
  $("upload-input").addEventListener("change", (e) => upload(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  const nav = $("models");
  try {
    models = await (await call("/models")).json();
  } catch (err) {
    nav.replaceChildren(Object.assign(document.createElement("p"), { className: "error",
      textContent: `cannot list the models: ${err.message}` }));
    return;
  }
  if (!models.length) {
    nav.replaceChildren(Object.assign(document.createElement("p"), { className: "muted",
      textContent: "This server serves no model yet: import some with python -m serving.import_models." }));
    return;
  }
  nav.replaceChildren(...models.map((m) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.model = m.name;
    b.append(m.name, Object.assign(document.createElement("small"), {
      textContent: `${m.task}${m.dataset ? ", " + m.dataset : ""}` }));
    b.addEventListener("click", () => select(m.name));
    return b;
  }));
  document.body.dataset.ready = "true";
  window.addEventListener("hashchange", () => {
    const name = decodeURIComponent(location.hash.slice(1));
    if (!current || name !== current.name) select(name);
  });
  select(decodeURIComponent(location.hash.slice(1)));
}

start();
