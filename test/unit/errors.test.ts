import { describe, expect, test } from "vitest";
import * as api from "../../src/index.ts";
import { AcademyError, ErrorCode, RemoteError, errorClasses } from "../../src/errors.ts";
import { fromFailure, toFailure } from "../../src/protocol/failure.ts";

const exportedErrors = Object.entries(api).filter(
  ([, value]) => typeof value === "function" && (value === AcademyError || value.prototype instanceof AcademyError),
) as Array<[string, new (message: string, options?: Record<string, unknown>) => AcademyError]>;

describe("errors", () => {
  test("every exported error's name is its class name and its code is stable", () => {
    expect(exportedErrors.length).toBeGreaterThan(20);
    const codes = new Set<string>(Object.values(ErrorCode));
    for (const [exportName, cls] of exportedErrors) {
      const error = new cls("boom");
      expect(error.name).toBe(exportName);
      expect(cls.name).toBe(exportName);
      expect(error).toBeInstanceOf(Error);
      expect(codes.has(error.code as string)).toBe(true);
      expect(errorClasses.get(exportName)).toBe(cls);
    }
  });

  test("errors round-trip through the failure shape with class, context and cause", () => {
    const original = new api.PayloadTooLargeError("too big", { size: 10, limit: 5, cause: new TypeError("inner") });
    const rebuilt = fromFailure(toFailure(original)) as api.PayloadTooLargeError;
    expect(rebuilt).toBeInstanceOf(api.PayloadTooLargeError);
    expect(rebuilt.message).toBe("too big");
    expect([rebuilt.size, rebuilt.limit]).toEqual([10, 5]);
    expect(rebuilt.cause).toBeInstanceOf(TypeError);
    expect((rebuilt as unknown as { remoteStack: string }).remoteStack).toContain("PayloadTooLargeError: too big");
  });

  test("unknown remote errors keep their name and code; groups keep members", () => {
    const custom = Object.assign(new Error("nope"), { name: "QuotaError", code: "E_QUOTA" });
    const rebuilt = fromFailure(toFailure(custom));
    expect(rebuilt).toBeInstanceOf(RemoteError);
    expect([rebuilt.name, rebuilt.message, (rebuilt as RemoteError).code]).toEqual(["QuotaError", "nope", "E_QUOTA"]);
    const group = fromFailure(toFailure(new api.ErrorGroup("two", { errors: [new Error("a"), new RangeError("b")] })));
    expect(group).toBeInstanceOf(api.ErrorGroup);
    expect((group as api.ErrorGroup).errors.map((e) => (e as Error).name)).toEqual(["Error", "RangeError"]);
    expect(fromFailure(toFailure("plain string")).message).toBe("plain string");
  });

  test("cause chains are cut at a fixed depth", () => {
    let error: Error = new Error("root");
    for (let i = 0; i < 50; i++) error = new Error(`level ${i}`, { cause: error });
    let depth = 0;
    for (let f = toFailure(error); f.cause !== undefined; f = f.cause) depth++;
    expect(depth).toBeLessThanOrEqual(8);
  });
});
