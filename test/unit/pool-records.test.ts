/**
 * The launch request format other systems publish: what a host accepts and how it rejects the rest.
 */
import { describe, expect, test } from "vitest";
import { InvalidConfigError, MalformedMessageError, natsLayout } from "../../src/index.ts";
import {
  POOL_RECORD_VERSION,
  decodeHostRecord,
  decodeLaunchRequest,
  decodePlacement,
  encodeLaunchRequest,
} from "../../src/pool/records.ts";
import type { LaunchRequest } from "../../src/pool/records.ts";
import { PlacementState } from "../../src/pool/placement.ts";
import { encodeValue } from "../../src/protocol/codec.ts";

const valid: LaunchRequest = {
  v: POOL_RECORD_VERSION,
  uid: "0b7c3a52-1f0e-4d9b-a1c4-2f61e1f8b0aa",
  name: "counter-1",
  type: "Counter",
  chain: ["Counter", "Agent"],
  pool: "gpu",
  gen: 0,
  attempt: 0,
  args: encodeValue([10]),
  config: {},
  maxRetries: 2,
  retryBackoffMs: 100,
  launchedAt: 1_790_000_000_000,
};

describe("launch requests", () => {
  test("round-trip, with extra fields ignored and a missing config defaulted", () => {
    expect(decodeLaunchRequest(encodeLaunchRequest(valid))).toEqual(valid);
    const { config: _config, name: _name, ...minimal } = valid;
    expect(decodeLaunchRequest(encodeValue({ ...minimal, extra: true }))).toMatchObject({ config: {}, name: undefined });
  });

  test("headers (a launch's trace context) travel with the request and its placement; none is no key", () => {
    const traced = { ...valid, headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } };
    expect(decodeLaunchRequest(encodeLaunchRequest(traced))).toEqual(traced);
    expect(decodePlacement(encodeValue({ ...traced, state: PlacementState.Queued, updatedAt: 1 }))?.headers).toEqual(traced.headers);
    expect("headers" in decodeLaunchRequest(encodeLaunchRequest(valid))).toBe(false);
    expect("headers" in decodeLaunchRequest(encodeValue({ ...valid, headers: null }))).toBe(false);
  });

  test.each([
    ["not CBOR", new Uint8Array([0xff, 0x00])],
    ["not a map", encodeValue([1, 2])],
    ["a future version", encodeValue({ ...valid, v: 2 })],
    ["a uid that could escape a subject", encodeValue({ ...valid, uid: "a.b" })],
    ["no type", encodeValue({ ...valid, type: "" })],
    ["a chain not starting with the type", encodeValue({ ...valid, chain: ["Other", "Agent"] })],
    ["a bad pool name", encodeValue({ ...valid, pool: "gpu.>" })],
    ["a negative generation", encodeValue({ ...valid, gen: -1 })],
    ["a fractional retry count", encodeValue({ ...valid, maxRetries: 1.5 })],
    ["args that are not bytes", encodeValue({ ...valid, args: [10] })],
    ["no launch time", encodeValue({ ...valid, launchedAt: "yesterday" })],
    ["headers that are not a map of text", encodeValue({ ...valid, headers: { traceparent: 7 } })],
  ])("rejects %s with MalformedMessageError", (_what, bytes) => {
    expect(() => decodeLaunchRequest(bytes)).toThrow(MalformedMessageError);
  });

  test("rejects a bad runtime config with InvalidConfigError", () => {
    expect(() => decodeLaunchRequest(encodeValue({ ...valid, config: { maxConcurrentActions: -3 } }))).toThrow(InvalidConfigError);
  });

  test("placements and host records decode, or are ignored when foreign", () => {
    expect(decodePlacement(encodeValue({ ...valid, state: PlacementState.Running, host: "h1", updatedAt: 1 }))).toMatchObject({
      state: "running",
      host: "h1",
    });
    expect(decodePlacement(encodeValue({ ...valid, state: "exploded", updatedAt: 1 }))).toBeUndefined();
    expect(decodePlacement(new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(decodeHostRecord(encodeValue({ v: 1, hostId: "h1", pool: "gpu", types: [], capacity: 1, load: 0, ttlMs: 6000 }))).toBeDefined();
    expect(decodeHostRecord(encodeValue({ v: 1, hostId: "h1" }))).toBeUndefined();
  });

  test("pool names become one subject token", () => {
    const layout = natsLayout("academy");
    expect(layout.launchSubject("gpu", valid.uid)).toBe(`academy.launch.gpu.${valid.uid}`);
    expect(layout.poolConsumer("gpu")).toBe("pool-gpu");
    for (const bad of ["", "a.b", "a*", ">", "x".repeat(33)]) expect(() => layout.poolSubjects(bad)).toThrow(InvalidConfigError);
  });
});
