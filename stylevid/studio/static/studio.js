// The studio page: controls -> a view (JSON) -> /api/frame -> the image.
//
// Latest wins: at most one frame request is in flight; changes made meanwhile are folded into one
// request sent when it returns, so a fast-dragged slider never queues stale frames. Each change gets a
// sequence number and a time; when its frame is decoded and about to be painted, the latency (change
// to pixels) is recorded in window.studio.latencies (benchmarks/studio.py reads it).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const client = Math.random().toString(36).slice(2) + Date.now().toString(36);
const studio = { latencies: [], seq: 0, shown: 0, info: null };
window.studio = studio;

const view = { seeds: {}, psi: {}, t: 0, settings: {}, upload: null, grid: null };
const changedAt = new Map(); // seq -> performance.now() of the change
let inFlight = false;
let pending = false;
let player = null;

function showMessage(text) {
  const box = $("#message");
  box.textContent = text || "";
  box.hidden = !text;
}

function viewJSON() {
  return JSON.parse(JSON.stringify(view));
}

// A control changed: remember when, and ask for a frame (sent now, or when the one in flight returns).
function changed() {
  studio.seq += 1;
  changedAt.set(studio.seq, performance.now());
  pending = true;
  pump();
}

async function pump() {
  if (inFlight || !pending) return;
  pending = false;
  inFlight = true;
  const seq = studio.seq;
  try {
    const response = await fetch("/api/frame", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client, seq, view: viewJSON() }),
    });
    if (response.ok) {
      await show(await response.blob(), seq);
    } else if (response.status !== 409) { // 409: replaced by a newer request of this page
      showMessage((await response.json()).error);
    }
  } catch (error) {
    showMessage(`the studio does not answer (${error}); is \`stylevid studio\` still running?`);
  } finally {
    inFlight = false;
    pump();
  }
}

async function show(blob, seq) {
  const img = $("#frame");
  const old = img.src;
  img.src = URL.createObjectURL(blob);
  await img.decode();
  if (old) URL.revokeObjectURL(old);
  img.classList.toggle("grid", view.grid !== null);
  requestAnimationFrame(() => {
    const ms = performance.now() - changedAt.get(seq);
    for (const key of changedAt.keys()) if (key <= seq) changedAt.delete(key);
    studio.latencies.push(ms);
    studio.shown = seq;
    img.dataset.seq = String(seq);
    $("#status").textContent = `frame ${seq}: ${ms.toFixed(0)} ms from the change to the page`;
    showMessage("");
  });
}

function randomSeed() {
  return Math.floor(Math.random() * 1000);
}

function factorBox(factor) {
  return $(`fieldset.factor[data-factor="${factor}"]`);
}

function setSeed(factor, seed) {
  const box = factorBox(factor);
  view.seeds[factor] = seed;
  $(".seed", box).value = String(Math.min(seed, 999));
  $(".seed-number", box).value = String(seed);
}

// A factor's seed controls work unless it is locked, or (identity) an uploaded photo stands in for its seed.
function enableSeeds(factor) {
  const box = factorBox(factor);
  const fixed = $(".lock", box).checked || (factor === "identity" && view.upload !== null);
  for (const input of box.querySelectorAll(".seed, .seed-number, .psi, .new")) input.disabled = fixed;
  $("legend", box).textContent = factor === "identity" && view.upload !== null ? "identity (from the photos)" : factor;
}

function buildFactors(info) {
  const template = $("#factor-template");
  for (const factor of info.factors) {
    const box = template.content.firstElementChild.cloneNode(true);
    box.dataset.factor = factor;
    $("legend", box).textContent = factor;
    box.id = `factor-${factor}`;
    $("#factors").append(box);
    view.seeds[factor] = 0;
    view.psi[factor] = 1;
    const psi = $(".psi", box);
    psi.min = String(Math.max(0, info.psi_range[0]));
    $(".seed", box).addEventListener("input", (e) => { setSeed(factor, Number(e.target.value)); changed(); });
    $(".seed-number", box).addEventListener("change", (e) => {
      const seed = Math.trunc(Number(e.target.value));
      if (!(seed >= 0 && seed <= 2147483647)) return showMessage(`seed ${e.target.value}: give 0 to 2147483647`);
      setSeed(factor, seed);
      changed();
    });
    psi.addEventListener("input", (e) => {
      view.psi[factor] = Number(e.target.value);
      $(".psi-value", box).textContent = e.target.value;
      changed();
    });
    $(".new", box).addEventListener("click", () => { setSeed(factor, randomSeed()); changed(); });
    $(".lock", box).addEventListener("change", (e) => {
      box.classList.toggle("locked", e.target.checked);
      if (factor === "identity") $("#upload").disabled = e.target.checked;
      enableSeeds(factor);
    });
  }
  $("#new-all").addEventListener("click", () => {
    for (const factor of info.factors) if (!$(".new", factorBox(factor)).disabled) setSeed(factor, randomSeed());
    changed();
  });
}

function buildSettings(controls) {
  const names = Object.keys(controls);
  $("#physical").hidden = names.length === 0;
  for (const name of names) {
    const spec = controls[name];
    const row = document.createElement("div");
    row.className = "setting";
    row.innerHTML = `<label><input type="checkbox" class="set"> ${name}</label>
      <input type="range" class="value" step="any"><output></output>`;
    row.dataset.setting = name;
    const [set, slider, out] = [$(".set", row), $(".value", row), $("output", row)];
    Object.assign(slider, { min: spec.low, max: spec.high, value: spec.default });
    slider.step = String((spec.high - spec.low) / 200);
    set.title = `hold ${name} (${spec.factor}) at this value; unticked: the ${spec.factor} code's own`;
    const label = () => { out.textContent = `${Number(slider.value).toFixed(1)} ${spec.unit}`; };
    label();
    slider.addEventListener("input", () => {
      set.checked = true;
      view.settings[name] = Number(slider.value);
      label();
      changed();
    });
    set.addEventListener("change", () => {
      if (set.checked) view.settings[name] = Number(slider.value);
      else delete view.settings[name];
      changed();
    });
    $("#settings").append(row);
  }
}

function buildGrid(info) {
  const options = (select, values, chosen) => {
    for (const value of values) select.add(new Option(String(value), String(value), false, value === chosen));
  };
  options($("#grid-rows"), info.factors, "identity");
  options($("#grid-columns"), info.factors, "lighting");
  const sizes = [];
  for (let n = info.grid_sizes[0]; n <= info.grid_sizes[1]; n += 1) sizes.push(n);
  options($("#grid-n"), sizes, 4);
  const update = () => {
    const rows = $("#grid-rows").value;
    const columns = $("#grid-columns").value;
    if ($("#grid-on").checked && rows === columns) {
      return showMessage("the grid's rows and columns vary the same factor: pick two different factors");
    }
    showMessage("");
    view.grid = $("#grid-on").checked ? { rows, columns, n: Number($("#grid-n").value) } : null;
    changed();
  };
  for (const id of ["#grid-on", "#grid-rows", "#grid-columns", "#grid-n"]) $(id).addEventListener("change", update);
}

function buildTime(info) {
  const slider = $("#time");
  slider.max = String(info.frames - 1);
  const setTime = (t) => {
    view.t = t;
    slider.value = String(t);
    $("#time-value").textContent = String(t);
    changed();
  };
  slider.addEventListener("input", () => setTime(Number(slider.value)));
  $("#play").addEventListener("click", () => {
    if (player !== null) {
      clearInterval(player);
      player = null;
      $("#play").textContent = "play";
      return;
    }
    $("#play").textContent = "pause";
    player = setInterval(() => setTime((view.t + 1) % info.frames), 1000 / info.fps);
  });
}

function fileData(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function buildUpload(info) {
  const input = $("#upload");
  const note = $("#upload-message");
  const say = (text, error) => {
    note.textContent = text;
    note.classList.toggle("error", error);
  };
  const limits = info.upload_limits;
  input.title = `${limits.types.join(" or ")}, at most ${limits.files} files of ${limits.bytes / 2 ** 20} MiB`;
  input.addEventListener("change", async () => {
    const files = Array.from(input.files);
    if (!files.length) return;
    say(`finding the face in ${files.map((f) => f.name).join(", ")} ...`, false);
    try {
      const body = { files: await Promise.all(files.map(async (f) => ({ name: f.name, data: await fileData(f) }))) };
      const response = await fetch("/api/upload", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) return say(answer.error, true);
      view.upload = answer.upload;
      $("#use-seed").hidden = false;
      enableSeeds("identity");
      say(`identity: ${answer.message}`, false);
      changed();
    } catch (error) {
      say(`the upload failed: ${error}`, true);
    } finally {
      input.value = "";
    }
  });
  $("#use-seed").addEventListener("click", () => {
    view.upload = null;
    $("#use-seed").hidden = true;
    enableSeeds("identity");
    say("", false);
    changed();
  });
}

function buildExports() {
  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", async () => {
      const kind = button.dataset.export;
      $("#status").textContent = `exporting ${kind} ...`;
      const response = await fetch("/api/export", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ kind, view: viewJSON() }),
      });
      if (!response.ok) return showMessage((await response.json()).error);
      const blob = await response.blob();
      const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || kind;
      if (kind === "python") {
        $("#snippet").textContent = await blob.text();
        $("#snippet").hidden = false;
      }
      const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
      $("#status").textContent = `exported ${name}`;
    });
  }
}

function buildTabs(info) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      for (const page of document.querySelectorAll(".tab-page")) page.hidden = page.id !== `tab-${tab.dataset.tab}`;
      if (tab.dataset.tab === "leakage" && info.leakage.measured && !$("#leakage").src) {
        $("#leakage").src = "/api/leakage.png";
        $("#leakage").hidden = false;
      }
    });
  }
  const leakage = info.leakage;
  $("#leakage-source").textContent = leakage.measured ? `${leakage.caption} — ${leakage.source}` : leakage.source;
}

async function start() {
  const response = await fetch("/api/info");
  const info = await response.json();
  studio.info = info;
  $("#network").textContent = `${info.network} · ${info.resolution}² · ${info.frames} frames at ${info.fps} fps`;
  buildFactors(info);
  buildSettings(info.controls);
  buildGrid(info);
  buildTime(info);
  buildUpload(info);
  buildExports();
  buildTabs(info);
  changed();
}

start().catch((error) => showMessage(`the studio could not start: ${error}`));
