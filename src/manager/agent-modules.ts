/**
 * The registry of agent classes by type name, built by importing the modules that define them.
 *
 * A class cannot cross a thread or process boundary, only its name can: a worker thread (see
 * `WorkerThreadExecutor`) or a runtime host is told which modules to import and which type to run,
 * and finds the class here. Both sides name a class by {@link agentTypeName}, so a class exported
 * under another binding name (or as `default`) is still found.
 */
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isAgentSubclass } from "../agent/agent.ts";
import { agentTypeName } from "../agent/agent-type.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import { AgentDefinitionError, ExecutorError } from "../errors.ts";

/** Schemes that `import()` understands as they are. */
const URL_SCHEME = /^(?:file|data|node):/;

/**
 * The specifier to `import()` for a module reference:
 * - a `URL`, or a string with a `file:`, `data:` or `node:` scheme, as it is;
 * - an absolute path, or a path starting with `./` or `../`, as a file (relative paths against
 *   `process.cwd()`, not against this module);
 * - any other string that names an existing file relative to `process.cwd()` (`"agents/foo.js"`),
 *   as that file;
 * - otherwise a package specifier (`"my-agents"`, `"@org/agents/math"`), resolved by Node from this
 *   library's location (which finds the application's `node_modules` in the usual layouts).
 */
export function agentModuleSpecifier(module: string | URL, cwd: string = process.cwd()): string {
  if (module instanceof URL) return module.href;
  if (URL_SCHEME.test(module)) return module;
  if (isAbsolute(module) || module.startsWith("./") || module.startsWith("../")) {
    return pathToFileURL(resolve(cwd, module)).href;
  }
  const asPath = resolve(cwd, module);
  if (statSync(asPath, { throwIfNoEntry: false })?.isFile() === true) return pathToFileURL(asPath).href;
  return module;
}

/** A module reference as text, for error messages and for sending to another thread. */
export function agentModuleName(module: string | URL): string {
  return module instanceof URL ? module.href : module;
}

/** Whether `value` is a class that extends `Agent` (of any copy of this library; not `Agent` itself). */
function isAgentClass(value: unknown): value is AgentClass {
  return isAgentSubclass(value);
}

/**
 * Import `modules` and collect every exported class that extends `Agent` (at any depth, abstract
 * ones included), keyed by its type name ({@link agentTypeName}). A class exported several times
 * (under two names, or re-exported by another module) counts once.
 *
 * Modules are imported one after another, in order, through Node's module cache: loading the same
 * modules again is cheap and yields the same classes. Classes extending the `Agent` of another
 * copy of this library (the package and its sources, or a bundled copy) are found too.
 *
 * @param modules - file paths, `file:` URLs or package specifiers (see {@link agentModuleSpecifier}).
 * @returns type name to class.
 * @throws {ExecutorError} if a module cannot be imported (its error is the `cause`).
 * @throws {AgentDefinitionError} if two different classes have the same type name (both modules
 *   are named), or an exported agent class has no usable type name.
 */
export async function loadAgentClasses(modules: Iterable<string | URL>): Promise<Map<string, AgentClass>> {
  const classes = new Map<string, AgentClass>();
  const origins = new Map<string, string>();
  for (const module of modules) {
    const name = agentModuleName(module);
    let namespace: Record<string, unknown>;
    try {
      namespace = (await import(agentModuleSpecifier(module))) as Record<string, unknown>;
    } catch (error) {
      throw new ExecutorError(`Could not import agent module '${name}': ${(error as Error)?.message ?? String(error)}`, {
        cause: error,
      });
    }
    for (const [exportName, value] of Object.entries(namespace)) {
      if (!isAgentClass(value)) continue;
      let typeName: string;
      try {
        typeName = agentTypeName(value);
      } catch (error) {
        throw new AgentDefinitionError(`Export '${exportName}' of agent module '${name}': ${(error as Error).message}`, {
          cause: error,
        });
      }
      const existing = classes.get(typeName);
      if (existing === value) continue;
      if (existing !== undefined) {
        throw new AgentDefinitionError(
          `Two different agent classes have the type name '${typeName}': one in '${origins.get(typeName)}', one in ` +
            `'${name}' (export '${exportName}'); give one of them another static agentType`,
          { agentType: typeName },
        );
      }
      classes.set(typeName, value);
      origins.set(typeName, name);
    }
  }
  return classes;
}

/**
 * The class of type `typeName` among `classes` (from {@link loadAgentClasses}).
 * @param modules - the modules the classes came from, named in the error.
 * @throws {AgentDefinitionError} (with `agentType`) if no class has that type name.
 */
export function requireAgentClass(
  classes: ReadonlyMap<string, AgentClass>,
  typeName: string,
  modules: Iterable<string | URL> = [],
): AgentClass {
  const cls = classes.get(typeName);
  if (cls !== undefined) return cls;
  const searched = [...modules].map((m) => `'${agentModuleName(m)}'`).join(", ");
  const known = [...classes.keys()].sort().join(", ");
  throw new AgentDefinitionError(
    `No agent class of type '${typeName}' is exported by the agent modules${searched === "" ? "" : ` (${searched})`}; ` +
      `found: ${known === "" ? "none" : known}`,
    { agentType: typeName },
  );
}
