/**
 * The types of streams on handles: `handle.stream(name, ...)` takes only streaming actions' names
 * with their arguments and yields their item type; the typed proxy member of an `async *` method
 * is an async iterable of its items; `handle.action` takes only ordinary actions. Checked by
 * `npm run typecheck` (the `@ts-expect-error` lines fail it if they type-check), and run.
 */
import { describe, expect, expectTypeOf, test } from "vitest";
import { Agent, LocalExchangeFactory, Manager, action } from "../../src/index.ts";
import type { ActionContext, ActionName, Handle, StreamItem, StreamName } from "../../src/index.ts";

class Typed extends Agent {
  @action async *letters(word: string): AsyncGenerator<string, number> {
    for (const letter of word) yield letter;
    return word.length;
  }
  @action({ context: true }) async *numbered(n: number, ctx?: ActionContext): AsyncGenerator<{ i: number; action: string }> {
    for (let i = 0; i < n; i++) yield { i, action: ctx!.action };
  }
  @action async plain(x: number): Promise<number> {
    return x;
  }
}

describe("stream types", () => {
  test("names, arguments and items of streaming actions are typed", async () => {
    await using manager = await Manager.fromExchangeFactory(new LocalExchangeFactory());
    const typed: Handle<Typed> = await manager.launch(Typed);
    expectTypeOf<StreamName<Typed>>().toEqualTypeOf<"letters" | "numbered">();
    expectTypeOf<StreamItem<Typed, "letters">>().toEqualTypeOf<string>();
    expectTypeOf<ActionName<Typed>>().toEqualTypeOf<"plain" | "agentDescribe" | "agentStats">();

    const letters: string[] = [];
    for await (const letter of typed.stream("letters", "abc")) {
      expectTypeOf(letter).toEqualTypeOf<string>();
      letters.push(letter);
    }
    const numbered: number[] = [];
    for await (const item of typed.numbered(2)) {
      expectTypeOf(item).toEqualTypeOf<{ i: number; action: string }>();
      numbered.push(item.i);
    }
    expect([letters, numbered]).toEqual([["a", "b", "c"], [0, 1]]);

    // Names that are not streaming actions fall back, as `action` does for untyped names, to the
    // by-name form, whose items are unknown.
    expectTypeOf(typed.stream("plain", 1)).toEqualTypeOf<AsyncIterableIterator<unknown>>();
    expectTypeOf(typed.stream("letters", "abc")).toEqualTypeOf<AsyncIterableIterator<string>>();
    // @ts-expect-error: the context's place takes no argument
    const contextArg = (): unknown => typed.numbered(1, {} as ActionContext);
    // @ts-expect-error: the proxy member of a streaming action checks its arguments
    const wrongArgs = (): unknown => typed.letters(42);
    expect([contextArg, wrongArgs].map((f) => typeof f)).toEqual(["function", "function"]);
  });
});
