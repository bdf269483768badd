// Browser entry of a kernel worker thread (a module Web Worker): the first message starts the loop.
import { runWorker } from "./worker.js";
import type { WorkerInit } from "./pool.js";

addEventListener("message", (e) => runWorker((e as MessageEvent<WorkerInit>).data), { once: true });
