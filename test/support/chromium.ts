/**
 * The browser of the browser tests: a Chromium the system has (Debian's `chromium` package, or
 * the one `$CHROMIUM_PATH` names), driven by playwright-core, which downloads no browser.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Where Chromium usually is, in the order looked at (after `$CHROMIUM_PATH`, then PATH). */
const NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
const KNOWN = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium", "/snap/bin/chromium"];

/** How to get one, for the message of a skipped test. */
export const CHROMIUM_INSTALL_HINT =
  "no Chromium found: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium binary to drive, or undefined when this machine has none. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const named = env.CHROMIUM_PATH;
  if (named !== undefined && named !== "") return executable(named) ? named : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter).filter((d) => d !== "")) {
    for (const name of NAMES) if (executable(join(dir, name))) return join(dir, name);
  }
  return KNOWN.find(executable);
}

/** Launch options for playwright-core's `chromium.launch` with the system's browser. */
export function chromiumLaunchOptions(executablePath: string): { executablePath: string; headless: true; args: string[] } {
  // As root (CI containers) Chromium refuses to start sandboxed; small /dev/shm in containers.
  return { executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] };
}
