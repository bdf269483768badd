// A module worker that caches a file in OPFS as browsers without createWritable must: through a sync
// access handle (workers only). Imports the loaders' own modules: import maps do not reach workers.
import { urlSource } from "/dist/web/http.js";
import { clearModelCache } from "/dist/web/cache.js";

delete FileSystemFileHandle.prototype.createWritable;

/** A checksum of the bytes, to compare with Node's without sending megabytes back. */
const checksum = (bytes) => bytes.reduce((h, b, i) => (h + b * ((i % 251) + 1)) >>> 0, 0);

/** Read the whole file twice through the cache; report each visit's progress events and checksum. */
onmessage = async ({ data: url }) => {
  const visits = [];
  for (let i = 0; i < 2; i++) {
    const events = [];
    const src = await urlSource(url, { onDownload: (p) => events.push(p.fromCache) });
    const into = new Uint8Array(src.size);
    await src.read(0, into);
    visits.push({ fromCache: [...new Set(events)], checksum: checksum(into) });
  }
  postMessage({ visits, cleared: await clearModelCache(url) });
};
