// npm pretest: the browser tests drive Debian's Chromium (never a downloaded browser). Install it when
// missing and this is a root shell with apt, as on CI; otherwise say how.
import { existsSync } from "node:fs";
import { execSync } from "node:child_process";

if (!existsSync("/usr/bin/chromium")) {
  if (process.getuid?.() === 0 && existsSync("/usr/bin/apt-get")) {
    console.error("test/browser: installing Debian's chromium for the browser tests");
    execSync("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null", { stdio: "inherit" });
  } else {
    console.error("test/browser: the browser tests need /usr/bin/chromium: sudo apt-get install chromium");
    process.exit(1);
  }
}
