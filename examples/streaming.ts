/**
 * Streaming results: an agent whose action is an `async *` method yields "tokens" one by one, as
 * a language model would; the caller reads them with `for await` as they come, with flow control
 * (the agent never runs more than a window ahead of the reader), and can stop early. An ordinary
 * action reports its progress to a caller that asks for it.
 *
 *   npx tsx examples/streaming.ts [nats://127.0.0.1:4222]     (no argument and no NATS_URL: in process)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, LocalExchangeFactory, Manager, NatsExchangeFactory, action } from "../src/index.ts";
import type { ExchangeFactory } from "../src/index.ts";

/** A stand-in for a language model: "generates" the words of its answer one at a time. */
export class Writer extends Agent {
  /** How many generations were stopped by their reader. */
  stopped = 0;

  @action async *generate(prompt: string, delayMs = 5): AsyncGenerator<string, number> {
    const answer = `You asked: ${prompt}. Streams arrive token by token, in order, each once.`;
    const tokens = answer.split(/(?<= )/);
    const signal = this.actionContext.signal; // aborts when the caller stops reading
    try {
      for (const token of tokens) {
        await sleep(delayMs, undefined, { signal }); // the "model" thinking
        yield token;
      }
      return tokens.length;
    } finally {
      // Runs however the stream ends: to its end, on the caller's `break`, a timeout or shutdown.
      if (signal.aborted) this.stopped++;
    }
  }

  /** An ordinary action that reports how far it got. */
  @action async summarize(chapters: number): Promise<string> {
    for (let i = 1; i <= chapters; i++) {
      await sleep(2);
      this.actionContext.reportProgress({ chapter: i, of: chapters });
    }
    return `${chapters} chapters summarized`;
  }

  @action async stoppedCount(): Promise<number> {
    return this.stopped;
  }
}

/** Run the example on `factory`, printing what happens. @returns the text streamed in full. */
export async function main(factory: ExchangeFactory, print: (...values: unknown[]) => void = console.log): Promise<string> {
  await using manager = await Manager.fromExchangeFactory(factory);
  const writer = await manager.launch(Writer);

  // The typed proxy form: `writer.generate(...)` iterated where it is made is a stream.
  let text = "";
  for await (const token of writer.generate("what is a stream?")) text += token;
  print(text);

  // Stop early: `break` cancels the stream, and the generator's `finally` runs in the agent.
  const firstWords: string[] = [];
  for await (const token of writer.with({ window: 4 }).stream("generate", "tell me everything", 20)) {
    firstWords.push(token.trim());
    if (firstWords.length === 3) break;
  }
  print("first three tokens:", firstWords.join(" "));

  // Progress of an ordinary action.
  const summary = await writer.invoke("summarize", [3], {
    onProgress: (p) => print("progress:", JSON.stringify(p)),
  });
  print(summary);
  // The cancel went to the agent before the summary request did.
  print("generations stopped by their reader:", await writer.stoppedCount());
  return text;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const servers = process.argv[2] ?? process.env.NATS_URL;
  await main(servers === undefined ? new LocalExchangeFactory() : new NatsExchangeFactory({ servers }));
}
