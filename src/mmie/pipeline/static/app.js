// The page of `mmie serve`: posts the text and images to /extract as multipart, then shows
// entities highlighted by type, relations head -relation-> tail, and each image's relevance.
"use strict";
const MAX_IMAGES = 4;
const KNOWN_TYPES = ["PER", "LOC", "ORG", "MISC"];
let files = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function addFiles(list) {
  for (const file of list) {
    if (!file.type.startsWith("image/")) continue;
    if (files.length >= MAX_IMAGES) { showError(`at most ${MAX_IMAGES} images per post`); break; }
    files.push(file);
  }
  renderThumbs(null);
}

function renderThumbs(images) {
  const box = $("thumbs");
  box.replaceChildren();
  files.forEach((file, index) => {
    const thumb = el("div", { class: "thumb", "data-index": String(index) });
    const img = el("img", { alt: file.name });
    img.src = URL.createObjectURL(file);
    thumb.append(img, el("div", { class: "name" }, file.name));
    const info = images && images[index];
    if (info && info.relevance !== null && info.relevance !== undefined) {
      const value = Math.max(0, Math.min(1, info.relevance));
      const fill = el("div", { class: "fill" });
      fill.style.width = `${(100 * value).toFixed(1)}%`;
      thumb.append(el("div", { class: "bar", title: `relevance ${value.toFixed(3)}` }, fill),
                   el("div", { class: "relevance-label" }, `relevance ${value.toFixed(3)}`));
    } else if (images) {
      thumb.append(el("div", { class: "relevance-label" }, "no relevance from the model"));
    }
    box.append(thumb);
  });
}

function typeClass(type) { return KNOWN_TYPES.includes(type) ? type : "other"; }

function renderEntities(result) {
  const box = $("entities");
  box.replaceChildren();
  const text = result.text;
  let at = 0;
  const sorted = [...result.entities].map((e, i) => ({ ...e, index: i })).sort((a, b) => a.start - b.start);
  for (const entity of sorted) {
    if (entity.start < at) continue;  // overlapping given entities: show the first
    box.append(document.createTextNode(text.slice(at, entity.start)));
    const score = entity.score === null ? "given" : `score ${entity.score.toFixed(3)}`;
    const mark = el("mark", { class: `ent ${typeClass(entity.type)}`, "data-type": entity.type,
                              "data-index": String(entity.index), title: `${entity.type}, ${score}` },
                    text.slice(entity.start, entity.end), el("span", { class: "type" }, entity.type));
    box.append(mark);
    at = entity.end;
  }
  box.append(document.createTextNode(text.slice(at)));
  if (!result.entities.length) box.append(el("div", { class: "none" }, "no entities found"));
  const types = [...new Set(result.entities.map((e) => e.type))];
  $("legend").replaceChildren(...types.map((t) => el("mark", { class: typeClass(t) }, t)));
}

function renderRelations(result) {
  const list = $("relations");
  list.replaceChildren();
  for (const relation of result.relations) {
    const head = result.entities[relation.head], tail = result.entities[relation.tail];
    list.append(el("li", { class: "relation" },
      el("strong", {}, head.text), el("span", { class: "arrow" }, "—"),
      el("span", { class: "label" }, relation.relation), el("span", { class: "arrow" }, "→"),
      el("strong", {}, tail.text), el("span", { class: "score" }, `score ${relation.score.toFixed(3)}`)));
  }
  if (!result.relations.length) list.append(el("li", { class: "none" }, "no relations found"));
  const skipped = (result.skipped_pairs || []).length;
  $("skipped").textContent = skipped ?
    `${skipped} more candidate pair${skipped === 1 ? "" : "s"} not classified (over the service's limit of pairs per post)` : "";
  $("skipped").hidden = !skipped;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const body = new FormData();
  body.append("text", $("text").value);
  for (const file of files) body.append("images", file, file.name);
  $("submit").disabled = true;
  $("status").textContent = "extracting…";
  try {
    const response = await fetch("/extract", { method: "POST", body });
    const payload = await response.json();
    if (!response.ok) {
      showError(`${response.status}: ${payload.field ? payload.field + ": " : ""}${payload.detail}`);
      return;
    }
    renderEntities(payload);
    renderRelations(payload);
    renderThumbs(payload.images);
    $("results").hidden = false;
  } catch (error) {
    showError(`request failed: ${error}`);
  } finally {
    $("submit").disabled = false;
    $("status").textContent = "";
  }
}

async function showModels() {
  try {
    const info = await (await fetch("/models")).json();
    const names = Object.entries(info.models).map(([task, m]) => `${task.toUpperCase()}: ${m.model}`);
    $("models").textContent = `models — ${names.join(" · ")}`;
  } catch (error) { /* the footer is optional */ }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
$("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
$("clear").addEventListener("click", () => { files = []; renderThumbs(null); });
$("post-form").addEventListener("submit", submit);
showModels();
