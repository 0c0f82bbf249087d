/**
 * A pipeline of agents: each stage holds a handle to the next (handles are launch arguments) and
 * passes its output on; the last stage keeps the result. Stages can run anywhere: another process,
 * a worker thread, a host pool.
 *
 *   npx tsx examples/pipeline.ts [nats://127.0.0.1:4222]     (no argument and no NATS_URL: in process)
 */
import { Agent, LocalExchangeFactory, Manager, NatsExchangeFactory, action } from "../src/index.ts";
import type { ExchangeFactory, Handle } from "../src/index.ts";

/** Last stage: keeps the most frequent words it was sent. */
export class Report extends Agent {
  #top: Array<[string, number]> = [];
  @action async publish(top: Array<[string, number]>): Promise<void> {
    this.#top = top;
  }
  @action async top(): Promise<Array<[string, number]>> {
    return this.#top;
  }
}

/** Middle stage: counts words across documents and sends the top `n` on after each one. */
export class Tally extends Agent {
  readonly #next: Handle<Report>;
  readonly #n: number;
  readonly #counts = new Map<string, number>();
  constructor(next: Handle<Report>, n: number) {
    super();
    this.#next = next;
    this.#n = n;
  }
  @action async add(words: string[]): Promise<number> {
    for (const word of words) this.#counts.set(word, (this.#counts.get(word) ?? 0) + 1);
    const top = [...this.#counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, this.#n);
    await this.#next.publish(top);
    return this.#counts.size;
  }
}

/** First stage: splits documents into lower-case words. */
export class Tokenize extends Agent {
  readonly #next: Handle<Tally>;
  constructor(next: Handle<Tally>) {
    super();
    this.#next = next;
  }
  @action async feed(document: string): Promise<number> {
    const words = document.toLowerCase().match(/[a-z']+/g) ?? [];
    await this.#next.add(words);
    return words.length;
  }
}

/** Run the example on `factory`, printing what happens. */
export async function main(factory: ExchangeFactory, print: (...values: unknown[]) => void = console.log): Promise<Array<[string, number]>> {
  await using manager = await Manager.fromExchangeFactory(factory);
  // Built from the end: each stage gets the handle of the next.
  const report = await manager.launch(Report);
  const tally = await manager.launch(Tally, { args: [report, 3] });
  const tokenize = await manager.launch(Tokenize, { args: [tally] });
  for (const document of ["The cat sat on the mat.", "The dog sat on the cat.", "A cat, a dog, the end."]) {
    print(`fed ${await tokenize.feed(document)} words`);
  }
  const top = await report.top();
  print("top words:", top.map(([word, n]) => `${word} ${n}`).join(", "));
  return top;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const servers = process.argv[2] ?? process.env.NATS_URL;
  await main(servers === undefined ? new LocalExchangeFactory() : new NatsExchangeFactory({ servers }));
}
