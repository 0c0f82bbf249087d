/**
 * Pool names. A pool's name becomes a subject token, a consumer name and a key prefix wherever the
 * pool lives, so it is checked once, here.
 */
import { InvalidConfigError } from "../errors.ts";

const POOL = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Check a pool name.
 * @returns the name.
 * @throws {InvalidConfigError} unless it is 1-32 characters of `[A-Za-z0-9_-]`.
 */
export function checkPool(pool: string): string {
  if (typeof pool !== "string" || !POOL.test(pool)) {
    throw new InvalidConfigError(`A pool name must be 1-32 characters of [A-Za-z0-9_-] (got ${JSON.stringify(pool)})`, {
      option: "pool",
    });
  }
  return pool;
}
