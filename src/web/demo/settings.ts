// The sampling settings as the page's fields give them (text), checked: a setting out of range is an
// error naming it, so no NaN or fraction ever reaches the engine.
import type { Settings } from "./protocol.js";

/** The fields' text, by setting. */
export type SettingsText = Record<Exclude<keyof Settings, "ignoreEos">, string>;

const int = Number.isSafeInteger;

/** Each setting: its name in messages, what it accepts, and that in words. */
const RULES: Record<keyof SettingsText, [name: string, ok: (v: number) => boolean, what: string]> = {
  temperature: ["temperature", (v) => v >= 0, "a number ≥ 0 (0 is greedy)"],
  topK: ["top-k", (v) => int(v) && v >= 0, "an integer ≥ 0 (0: off)"],
  topP: ["top-p", (v) => v > 0 && v <= 1, "a number above 0, at most 1"],
  maxNewTokens: ["max tokens", (v) => int(v) && v >= 1, "an integer ≥ 1"],
  seed: ["seed", (v) => int(v) && v >= 0 && v < 2 ** 32, "an integer from 0 to 4294967295"],
};

/** Parse and check the settings; throws an Error naming the first setting that is not valid. */
export function parseSettings(text: SettingsText, ignoreEos: boolean): Settings {
  const out = { ignoreEos } as Settings;
  for (const [key, [name, ok, what]] of Object.entries(RULES) as [keyof SettingsText, (typeof RULES)[keyof SettingsText]][]) {
    const raw = text[key].trim(), v = Number(raw);
    if (raw === "" || !Number.isFinite(v) || !ok(v)) throw new Error(`${name}: ${raw === "" ? "empty" : JSON.stringify(raw.slice(0, 40))}, but it must be ${what}`);
    out[key] = v;
  }
  return out;
}
