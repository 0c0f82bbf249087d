import { transform } from "esbuild";
import { defineConfig, type Plugin } from "vitest/config";

/**
 * Vite 8 transforms TypeScript with oxc, which leaves standard decorators in place; Node 20 cannot
 * parse them. esbuild lowers them (and `using` declarations) for the Node version we support.
 */
function esbuildTypeScript(): Plugin {
  return {
    name: "esbuild-typescript",
    enforce: "pre",
    async transform(code, id) {
      if (!/\.(m|c)?ts$/.test(id.split("?")[0] ?? "")) return null;
      const result = await transform(code, {
        loader: "ts",
        format: "esm",
        target: "node20",
        sourcemap: "external",
        // Keep class names: agent type names default to them.
        keepNames: true,
        sourcefile: id,
      });
      return { code: result.code, map: result.map };
    },
  };
}

/**
 * Three projects, all run by `npm test`:
 * - unit: no network, no child processes, seconds (`npm run test:unit`);
 * - integration: real nats-server processes spawned by the test fixture on random ports
 *   (`npm run test:integration`);
 * - browser: the dashboard in the system's headless Chromium (`npm run test:browser`; skipped,
 *   saying why, where no Chromium can be found).
 */
export default defineConfig({
  plugins: [esbuildTypeScript()],
  oxc: false,
  test: {
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 10_000 },
      },
      {
        extends: true,
        test: { name: "integration", include: ["test/integration/**/*.test.ts"], testTimeout: 30_000, hookTimeout: 60_000 },
      },
      {
        extends: true,
        test: { name: "browser", include: ["test/browser/**/*.test.ts"], testTimeout: 90_000, hookTimeout: 60_000 },
      },
    ],
  },
});
