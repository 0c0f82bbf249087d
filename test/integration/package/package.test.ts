/**
 * The package as users get it: `npm pack` of a fresh build, installed into a consumer project.
 * Its source maps carry their sources (the package does not ship src/), it has a LICENSE, the
 * `academy` bin and the entry points run, and it type-checks with the lowest TypeScript the README
 * states (5.2, with skipLibCheck: the @nats-io types need 5.7 otherwise) and with 5.7 without
 * skipLibCheck; experimentalDecorators gets an error that names the setting. TypeScript versions
 * come from the npm registry (`npm install --no-save` into a temporary directory).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "academy-package-"));
const consumer = join(dir, "consumer");
let tarball: string;
let packed: string[];

/** The lowest TypeScript the README states, and the first that needs no skipLibCheck. */
const LOWEST_TS = "5.2.2";
const NO_SKIP_LIB_CHECK_TS = "5.7.3";

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run("npm", args, { cwd, timeout: 180_000, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function installTypeScript(version: string): Promise<void> {
  await npm(["install", "--no-save", "--no-audit", "--no-fund", "--prefer-offline", tarball, `typescript@${version}`, "@types/node@20.19.43"], consumer);
}

/** Type-check the consumer with its tsconfig plus `extra` flags; the compiler's output and exit code. */
async function typecheck(extra: string[] = [], files: string[] = []): Promise<{ code: number; output: string }> {
  try {
    const { stdout } = await run(join(consumer, "node_modules/.bin/tsc"), [...(files.length > 0 ? files : ["-p", "."]), ...extra], { cwd: consumer });
    return { code: 0, output: stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: `${e.stdout}${e.stderr}` };
  }
}

beforeAll(async () => {
  await npm(["run", "build"], root);
  const [info] = JSON.parse(await npm(["pack", "--ignore-scripts", "--json", "--pack-destination", dir], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(dir, info!.filename);
  packed = info!.files.map((f) => f.path);
  await run("mkdir", ["-p", consumer]);
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(
    join(consumer, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023", "ESNext.Disposable", "ESNext.Decorators"],
        module: "nodenext",
        moduleResolution: "nodenext",
        strict: true,
        noEmit: true,
        types: ["node"],
      },
      files: ["app.ts"],
    }),
  );
  writeFileSync(
    join(consumer, "app.ts"),
    `import { Agent, Manager, NatsExchangeFactory, action, defineAgent } from "academy-nats";
import { RuntimeHost } from "academy-nats/runtime";
import { startNatsServer } from "academy-nats/testing";

class Counter extends Agent {
  #n = 0;
  @action async increment(by = 1): Promise<number> {
    return (this.#n += by);
  }
}
class Plain extends Agent {
  async hello(): Promise<string> {
    return "hi";
  }
}
defineAgent(Plain, { actions: ["hello"] });

export async function main(): Promise<number> {
  await using server = await startNatsServer();
  await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url }));
  const counter = await manager.launch(Counter);
  void RuntimeHost;
  return counter.increment(2);
}
`,
  );
  writeFileSync(
    join(consumer, "legacy.ts"),
    `import { Agent, action } from "academy-nats";
export class Legacy extends Agent {
  @action async hello(): Promise<string> {
    return "hi";
  }
}
`,
  );
  await installTypeScript(LOWEST_TS);
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the published package", () => {
  test("ships a LICENSE, no TypeScript sources, and source maps that carry their sources", () => {
    expect(packed).toContain("LICENSE");
    expect(packed.filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"))).toEqual([]);
    const maps = packed.filter((p) => p.endsWith(".js.map"));
    expect(maps.length).toBeGreaterThan(20);
    for (const path of maps) {
      const map = JSON.parse(readFileSync(join(consumer, "node_modules/academy-nats", path), "utf8")) as { sources: string[]; sourcesContent?: Array<string | null> };
      expect(map.sourcesContent?.length, path).toBe(map.sources.length);
      expect(map.sourcesContent!.every((s) => typeof s === "string" && s.length > 0), path).toBe(true);
    }
  });

  test("the academy bin and the entry points run from the installed package", async () => {
    const { stdout } = await run(join(consumer, "node_modules/.bin/academy"), ["--version"], { cwd: consumer });
    expect(stdout.trim()).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version);
    const { stdout: entries } = await run(
      process.execPath,
      ["--input-type=module", "-e", "const m = await import('academy-nats'); const r = await import('academy-nats/runtime'); console.log(typeof m.Manager, typeof r.RuntimeHost)"],
      { cwd: consumer },
    );
    expect(entries.trim()).toBe("function function");
  });

  test(`type-checks with TypeScript ${LOWEST_TS} (skipLibCheck), and experimentalDecorators gets an error naming the setting`, async () => {
    expect(await typecheck(["--skipLibCheck"])).toEqual({ code: 0, output: "" });
    const legacy = await typecheck(["--noEmit", "--target", "ES2022", "--module", "nodenext", "--strict", "--skipLibCheck", "--types", "node", "--experimentalDecorators"], ["legacy.ts"]);
    expect(legacy.code).not.toBe(0);
    expect(legacy.output).toContain("remove experimentalDecorators from tsconfig.json");
  }, 60_000);

  test(`type-checks with TypeScript ${NO_SKIP_LIB_CHECK_TS} without skipLibCheck`, async () => {
    await installTypeScript(NO_SKIP_LIB_CHECK_TS);
    expect(await typecheck()).toEqual({ code: 0, output: "" });
  }, 240_000);
});
