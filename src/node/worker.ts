// Node entry of a kernel worker thread: the first message carries the module, memories and control block.
import { parentPort } from "node:worker_threads";
import { runWorker } from "../kernels/worker.js";
import { configureV8 } from "./v8-flags.js";

configureV8();
parentPort!.once("message", runWorker);
