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

export default defineConfig({
  plugins: [esbuildTypeScript()],
  oxc: false,
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
