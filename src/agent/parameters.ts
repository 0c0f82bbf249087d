/**
 * Reading a function's parameter list from its source text: `agentDescribe` shows it, and
 * `@action({ context: true })` finds where the context goes (after the declared parameters).
 */

/** The text between a function's parameter parentheses, e.g. `"by = 1"`. */
export function parameterList(fn: unknown): string {
  const source = typeof fn === "function" ? Function.prototype.toString.call(fn) : "";
  const open = source.indexOf("(");
  if (open < 0) return "";
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < source.length; i++) {
    const ch = source[i]!;
    if (quote !== undefined) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'" || ch === "`") quote = ch;
    else if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") {
      depth--;
      if (depth === 0) return source.slice(open + 1, i).replace(/\s+/g, " ").trim();
    }
  }
  return "";
}

/**
 * The declared parameters of a parameter list, split at its top-level commas (defaults and
 * destructuring patterns may hold commas of their own), e.g. `["by = 1", "ctx"]`.
 */
export function splitParameters(list: string): string[] {
  const parameters: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const ch = list[i]!;
    if (quote !== undefined) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'" || ch === "`") quote = ch;
    else if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") depth--;
    else if (ch === "," && depth === 0) {
      parameters.push(list.slice(start, i).trim());
      start = i + 1;
    }
  }
  parameters.push(list.slice(start).trim());
  // A trailing comma leaves an empty last entry; an empty list leaves one empty entry.
  return parameters.filter((parameter) => parameter.length > 0);
}
