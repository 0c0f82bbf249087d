/**
 * Agent type identity: a stable name per class and the chain of its ancestors' names up to
 * `Agent`, recorded at registration so that discovery by a base type finds subclass agents in
 * other processes.
 */
import { AgentDefinitionError } from "../errors.ts";
import type { Agent } from "./agent.ts";
import { isAgentBase } from "./agent.ts";
import { classDefinitionSite } from "./decorators.ts";

/** Any concrete (constructible) agent class. */
export type AgentClass<A extends Agent = Agent> = new (...args: any[]) => A;

/** Any agent class, abstract ones included (for discovery). */
export type AnyAgentClass<A extends Agent = Agent> = abstract new (...args: any[]) => A;

/** Name and ancestry of an agent type, as stored in the registry. */
export interface AgentTypeInfo {
  /** The type's own name. */
  readonly name: string;
  /** Own name first, then each ancestor's, ending with `"Agent"`. */
  readonly chain: readonly string[];
}

/**
 * The stable name of an agent class: its own static `agentType` if it declares one, else the
 * class name. (A static inherited from a base class does not count: each class names itself.)
 * @throws {AgentDefinitionError} for anonymous classes without `agentType`.
 */
export function agentTypeName(cls: AnyAgentClass): string {
  // Compilers may rename the base class (esbuild emits `_Agent` for decorated classes).
  if (isAgentBase(cls)) return "Agent";
  const declared = Object.prototype.hasOwnProperty.call(cls, "agentType")
    ? (cls as { agentType?: unknown }).agentType
    : undefined;
  if (declared !== undefined) {
    if (typeof declared !== "string" || declared.length === 0) {
      throw new AgentDefinitionError(`static agentType of ${cls.name || "an anonymous class"} must be a non-empty string`);
    }
    return declared;
  }
  if (cls.name.length === 0) {
    throw new AgentDefinitionError("Anonymous agent classes need a static agentType");
  }
  return cls.name;
}

const infoCache = new WeakMap<object, AgentTypeInfo>();

/**
 * The class that first used each type name in this process (held weakly: a class nobody uses any
 * more frees its name). Two different classes under one name would share a type on the exchange:
 * `discover` would mix their agents, and a host would run either.
 */
const claims = new Map<string, WeakRef<AnyAgentClass>>();

/** `class Name (defined at file:line)`, as far as known. */
function describeClass(cls: AnyAgentClass): string {
  const site = classDefinitionSite(cls);
  return `class ${cls.name || "(anonymous)"}${site === undefined ? "" : ` (defined at ${site})`}`;
}

/**
 * Claim `name` for `cls` in this process.
 * @throws {AgentDefinitionError} naming both classes if another class holds the name.
 */
function claimTypeName(name: string, cls: AnyAgentClass): void {
  const holder = claims.get(name)?.deref();
  if (holder === undefined) {
    claims.set(name, new WeakRef(cls));
    return;
  }
  if (holder === cls) return;
  throw new AgentDefinitionError(
    `Two different agent classes have the type name '${name}': ${describeClass(holder)} and ${describeClass(cls)}. ` +
      "Give one of them its own static agentType (a name that stays the same when a bundler renames classes)",
    { agentType: name },
  );
}

/**
 * Name and ancestor chain of an agent class. The first class to use a type name in this process
 * owns it (registering, launching and discovering by class all ask for it).
 * @throws {AgentDefinitionError} if `cls` does not extend `Agent`, or a different class of this
 *   process has the same type name (or one of its ancestors does).
 */
export function agentTypeInfo(cls: AnyAgentClass): AgentTypeInfo {
  const cached = infoCache.get(cls);
  if (cached !== undefined) return cached;
  const chain: string[] = [];
  let c: unknown = cls;
  for (;;) {
    if (typeof c !== "function" || c === Function.prototype) {
      throw new AgentDefinitionError(`${(cls as { name?: string }).name ?? String(cls)} does not extend Agent`);
    }
    const name = agentTypeName(c as AnyAgentClass);
    chain.push(name);
    if (isAgentBase(c)) break;
    claimTypeName(name, c as AnyAgentClass);
    c = Object.getPrototypeOf(c);
  }
  const info: AgentTypeInfo = { name: chain[0]!, chain };
  infoCache.set(cls, info);
  return info;
}

/** A type given to `discover`: a class or a type name. */
export type AgentTypeRef = AnyAgentClass | string;

/**
 * The type name of a class or name.
 * @throws {AgentDefinitionError} for a class whose name another class of this process has.
 */
export function typeRefName(ref: AgentTypeRef): string {
  return typeof ref === "string" ? ref : agentTypeInfo(ref).name;
}

/**
 * Encode a type name as one NATS subject / KV key token: `[A-Za-z0-9_-]` are kept, every other
 * UTF-8 byte becomes `=XX` (hex). Reversible, and distinct names give distinct tokens.
 */
export function typeNameToken(name: string): string {
  let out = "";
  for (const byte of Buffer.from(name, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Inverse of {@link typeNameToken}. */
export function tokenToTypeName(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "=") {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return Buffer.from(bytes).toString("utf8");
}
