// The package as a user gets it: `npm pack` of this repository, installed from the tarball into an empty
// project. Packing and installing take a while, so the project is kept in the temp folder under a hash of
// what the tarball holds, and shared by the tests (and test files) that need it.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { ROOT } from "../helpers/oracle.js";

export interface InstalledProject {
  /** The project folder, with node_modules/openelm installed from the tarball. */
  dir: string;
  tarball: string;
  /** What `npm pack --dry-run --json` reports: size, unpackedSize, files. */
  pack: { size: number; unpackedSize: number; files: { path: string; size: number }[] };
  /** Output of `npm install` (run with --foreground-scripts, so any install script would show). */
  installLog: string;
  installSeconds: number;
}

const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });

/** The tarball's file list and a hash of those files' bytes. */
function packContents() {
  const [pack] = JSON.parse(npm(["pack", "--dry-run", "--json", "--ignore-scripts"], ROOT)) as InstalledProject["pack"][];
  const hash = createHash("sha256");
  for (const f of pack!.files) hash.update(f.path).update(readFileSync(join(ROOT, f.path)));
  return { pack: pack!, key: hash.digest("hex").slice(0, 16) };
}

/** Pack and install once per tarball content; later calls (and concurrent test files) reuse the folder. */
export function installedProject(): InstalledProject {
  const { pack, key } = packContents();
  const dir = join(tmpdir(), `openelm-package-${key}`), meta = join(dir, "install.json");
  if (existsSync(meta)) return { ...(JSON.parse(readFileSync(meta, "utf8")) as Omit<InstalledProject, "pack">), pack };
  const work = mkdtempSync(join(tmpdir(), "openelm-package-tmp-"));
  // --ignore-scripts: `npm pack` would otherwise run `prepare` (a full rebuild of dist/, shared with other tests)
  const tarball = join(work, npm(["pack", "--ignore-scripts", "--pack-destination", work], ROOT).trim().split("\n").pop()!);
  const project = join(work, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  const t0 = performance.now();
  const installLog = npm(["install", tarball, "--prefer-offline", "--no-audit", "--no-fund", "--foreground-scripts"], project);
  const info = { dir: join(dir, "app"), tarball: join(dir, basename(tarball)), installLog, installSeconds: (performance.now() - t0) / 1000 };
  writeFileSync(join(work, "install.json"), JSON.stringify(info));
  try {
    renameSync(work, dir);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another test file got there first
  }
  return { ...(JSON.parse(readFileSync(meta, "utf8")) as Omit<InstalledProject, "pack">), pack };
}
