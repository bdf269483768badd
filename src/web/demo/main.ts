// The demo page: choosing a model, chatting with it, and looking inside. Everything the engine does runs
// in worker.ts; this thread only sends requests and draws the answers.
import type { ModelInfo, ModelSource, Request, Response, Settings } from "./protocol.js";
import { parseSettings } from "./settings.js";
import { drawAttention, drawLayerChart, drawLens } from "./views.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const send = (r: Request) => worker.postMessage(r);

// Threads share the kernels' memory only in a cross-origin isolated page (COOP/COEP headers).
input("threads").value = String(crossOriginIsolated ? Math.min(256, navigator.hardwareConcurrency || 1) : 1);
input("threads").disabled = !crossOriginIsolated;
if (!crossOriginIsolated) {
  const notice = $("isolation");
  notice.hidden = false;
  notice.textContent = "This page is not cross-origin isolated (its server sends no COOP/COEP headers), so SharedArrayBuffer is unavailable: the model runs on one thread. “npx openelm web” serves the page with those headers.";
}

// ---- choosing a model ----

/** Models the server offers (openelm web writes /models.json); other servers give only the URL field. */
const choice = $<HTMLSelectElement>("model-choice");
let picked: ModelSource | undefined;

function addChoice(value: string, label: string) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  choice.append(o);
  return o;
}

type Served = { url: string; label: string; default?: boolean; adapter?: string };
/** The adapter folder the server pairs with a model, by the model's URL. */
const adapters = new Map<string, string>();

/** The server's list, or none (another server may answer with a page, or nothing). */
async function servedModels(): Promise<Served[]> {
  try {
    const r = await fetch("./models.json"), list: unknown = r.ok ? await r.json() : [];
    return Array.isArray(list) ? list.filter((m: Partial<Served> | null) => typeof m?.url === "string" && typeof m.label === "string") : [];
  } catch {
    return [];
  }
}

async function listModels() {
  for (const m of await servedModels()) {
    addChoice(m.url, m.label).selected = Boolean(m.default);
    if (typeof m.adapter === "string") adapters.set(m.url, m.adapter);
  }
  addChoice("url", "A URL…");
  const showUrlField = () => (input("model-url").hidden = choice.value !== "url");
  choice.onchange = showUrlField;
  showUrlField();
}

function pickLocal(source: ModelSource, label: string) {
  picked = source;
  const option = [...choice.options].find((o) => o.value === "local") ?? addChoice("local", "");
  option.textContent = `Local: ${label}`;
  option.selected = true;
  input("model-url").hidden = true;
}

$("pick-folder").onclick = async () => {
  const picker = (window as { showDirectoryPicker?: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
  if (!picker) return input("folder-input").click();
  const handle = await picker().catch(() => undefined);
  if (handle) pickLocal({ kind: "directory", handle }, handle.name);
};
$("pick-file").onclick = () => input("file-input").click();
for (const id of ["folder-input", "file-input"])
  input(id).onchange = () => {
    const files = Array.from(input(id).files ?? []);
    if (files.length) pickLocal({ kind: "files", files }, files.length === 1 ? files[0]!.name : (files[0]!.webkitRelativePath.split("/")[0] ?? "folder"));
  };

document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", async (e) => {
  e.preventDefault();
  // the dropped data is readable only during the event: take the files and ask for handles before awaiting
  const files = Array.from(e.dataTransfer?.files ?? []), items = Array.from(e.dataTransfer?.items ?? []).filter((i) => i.kind === "file");
  // a dropped folder arrives as a directory handle where the browser offers them (Chromium)
  const handles = await Promise.all(items.map((i) => (i as { getAsFileSystemHandle?: () => Promise<FileSystemHandle | null> }).getAsFileSystemHandle?.()));
  const dir = handles.find((h): h is FileSystemDirectoryHandle => h?.kind === "directory");
  if (dir) return pickLocal({ kind: "directory", handle: dir }, dir.name);
  if (files.length) pickLocal({ kind: "files", files }, files.map((f) => f.name).join(", "));
});

function chosenSource(): ModelSource | undefined {
  if (choice.value === "local") return picked;
  if (choice.value !== "url") {
    const adapter = adapters.get(choice.value);
    return { kind: "url", url: new URL(choice.value, location.href).href, ...(adapter ? { adapter: new URL(adapter, location.href).href } : {}) };
  }
  const url = input("model-url").value.trim();
  return url ? { kind: "url", url } : undefined;
}

$("load").onclick = () => {
  const source = chosenSource();
  if (!source) return status("error", "Give a model URL, or pick a local folder or file.");
  model = undefined;
  loading = true;
  setBusy(true);
  status("loading", "Loading…");
  const bar = $<HTMLProgressElement>("progress");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the first progress event
  send({ type: "load", source, threads: Math.min(256, Math.max(1, Math.round(Number(input("threads").value)) || 1)) });
};

function status(state: string, text: string) {
  const el = $("model-status");
  el.dataset.state = state;
  el.textContent = text;
}

// ---- chat ----

let model: ModelInfo | undefined;
let reply: HTMLElement | undefined;
/** A model is being loaded (Stop cancels it). */
let loading = false;
let started = 0, firstToken = 0, tokens = 0;

function setBusy(busy: boolean) {
  for (const id of ["send", "reset", "load", "inspect"]) ($(id) as HTMLButtonElement).disabled = busy || (id !== "load" && !model);
  ($("stop") as HTMLButtonElement).disabled = !busy || !(reply || loading);
}

/** The sampling settings from their fields (checked by parseSettings). */
function settings(): Settings {
  const text = (id: string) => input(id).value;
  return parseSettings({ temperature: text("temperature"), topK: text("top-k"), topP: text("top-p"), maxNewTokens: text("max-tokens"), seed: text("seed") }, input("ignore-eos").checked);
}

function addMessage(role: "user" | "assistant" | "error", text: string): HTMLElement {
  const el = document.createElement("div");
  el.className = `message ${role}`;
  el.textContent = text;
  $("messages").append(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $<HTMLTextAreaElement>("prompt").value.trim();
  if (!text || !model || reply) return;
  let chosen: Settings;
  try {
    chosen = settings();
  } catch (err) {
    return void addMessage("error", (err as Error).message);
  }
  $<HTMLTextAreaElement>("prompt").value = "";
  addMessage("user", text);
  reply = addMessage("assistant", "");
  reply.dataset.ids = "";
  reply.classList.add("streaming");
  started = performance.now();
  firstToken = tokens = 0;
  setBusy(true);
  send({ type: "send", text, system: $<HTMLTextAreaElement>("system").value.trim(), settings: chosen });
};
$("prompt").onkeydown = (e) => {
  if (e.key === "Enter" && !e.shiftKey) (e.preventDefault(), $<HTMLFormElement>("composer").requestSubmit());
};
$("stop").onclick = () => send({ type: "stop" });
$("reset").onclick = () => {
  send({ type: "reset" });
  $("messages").replaceChildren();
};

function onChunk(r: Extract<Response, { type: "chunk" }>) {
  if (!reply) return;
  const now = performance.now();
  if (r.ids.length && tokens === 0) {
    firstToken = now;
    $("stat-ttft").textContent = `${(now - started).toFixed(0)} ms`;
    $("stat-ttft").dataset.ms = String(now - started);
  }
  tokens += r.ids.length;
  reply.append(r.text);
  reply.dataset.ids = [reply.dataset.ids, ...r.ids].filter((s) => s !== "").join(",");
  reply.scrollIntoView({ block: "end" });
  const speed = r.tokensPerSecond ?? (tokens > 1 ? (tokens - 1) / ((now - firstToken) / 1000) : undefined);
  if (speed !== undefined) $("stat-speed").textContent = `${speed.toFixed(1)} tokens/s (${tokens} tokens)`;
  $("stat-arena").textContent = mib(r.arenaBytes);
  if (r.done) {
    reply.dataset.finish = r.finishReason;
    reply.classList.remove("streaming");
    if (r.finishReason === "abort") reply.append(" [stopped]");
    reply = undefined;
    setBusy(false);
  }
}

// ---- look inside ----

function fillSelect(select: HTMLSelectElement, count: number) {
  const keep = Math.min(Number(select.value) || 0, count - 1);
  select.replaceChildren(...Array.from({ length: count }, (_, i) => new Option(String(i), String(i), false, i === keep)));
}

$("layer").onchange = () => fillSelect($("head"), model?.layers[Number($<HTMLSelectElement>("layer").value)]?.queryHeads ?? 0);
$("inspect").onclick = () => {
  setBusy(true);
  send({ type: "inspect", layer: Number($<HTMLSelectElement>("layer").value), head: Number($<HTMLSelectElement>("head").value), text: input("inspect-text").value });
};

for (const [tab, view] of [["tab-chat", "chat-view"], ["tab-inside", "inside-view"]] as const)
  $(tab).onclick = () => {
    for (const [t, v] of [["tab-chat", "chat-view"], ["tab-inside", "inside-view"]]) {
      $(t!).setAttribute("aria-selected", String(t === tab));
      $(v!).hidden = v !== view;
    }
  };

// ---- answers from the worker ----

worker.onmessage = (e: MessageEvent<Response>) => {
  const r = e.data, bar = $<HTMLProgressElement>("progress");
  if (r.type === "download") {
    bar.max = r.total;
    bar.value = r.loaded;
    status("loading", `${r.fromCache ? "From the cache" : "Downloading"} ${r.file}: ${mib(r.loaded)} of ${mib(r.total)}`);
  } else if (r.type === "weights") {
    bar.max = r.total;
    bar.value = r.done;
    status("loading", `Loading weights: ${mib(r.done)} of ${mib(r.total)}`);
  } else if (r.type === "loaded") {
    model = r.info;
    bar.hidden = true;
    const c = r.info;
    status("loaded", `${c.name}: ${c.layers.length} layers, model_dim ${c.modelDim}, ${c.vocabSize} tokens, context ${c.contextLength}.`);
    $("stat-kernels").textContent = c.kernels;
    $("stat-arena").textContent = mib(c.arenaBytes);
    $("messages").replaceChildren();
    drawLayerChart($("layer-chart"), c.layers);
    fillSelect($("layer"), c.layers.length);
    fillSelect($("head"), c.layers[0]!.queryHeads);
    loading = false;
    setBusy(false);
  } else if (r.type === "chunk") onChunk(r);
  else if (r.type === "inspected") {
    drawAttention($<HTMLCanvasElement>("attention"), r.inspection);
    $("attention-caption").textContent = `Attention of layer ${r.inspection.layer}, query head ${r.inspection.head} (key/value head ${r.inspection.kvHead}) over ${r.inspection.tokens.length} tokens: row i is token i, spreading its attention over tokens 0..i.`;
    drawLens($<HTMLTableElement>("lens"), r.inspection);
    setBusy(false);
  } else if (r.type === "error") {
    if (r.during === "load") {
      status("error", r.aborted ? "Loading stopped." : `Could not load the model: ${r.message}`);
      bar.hidden = true;
      loading = false;
    } else if (r.during === "inspect") $("attention-caption").textContent = `Could not look inside: ${r.message}`;
    else addMessage("error", r.message);
    if (r.during === "send" && reply) (reply.remove(), (reply = undefined));
    setBusy(false);
  }
};
worker.onerror = (e) => status("error", `The engine worker failed: ${e.message}`);

// ---- memory, live ----

// The model's memory is the kernels' WebAssembly memory (reported by the worker). Chromium's
// measureUserAgentSpecificMemory counts neither the worker nor that memory, so it is not shown.
const heap = () => (performance as { memory?: { usedJSHeapSize: number } }).memory; // a fresh reading each time
if (heap()) setInterval(() => ($("stat-heap").textContent = mib(heap()!.usedJSHeapSize)), 1000);
else $("stat-heap").textContent = "(not offered by this browser)";

await listModels();
setBusy(false);
