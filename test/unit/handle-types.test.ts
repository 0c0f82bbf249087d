/**
 * Handles' typed proxies for agents that hold handles to each other (a team launched with
 * `launchBatch`): the types must resolve (checked by `npm run typecheck`), and the calls work.
 */
import { describe, expect, test } from "vitest";
import { Agent, Manager, action } from "../../src/index.ts";
import type { ActionContext, ActionName, Handle } from "../../src/index.ts";

class Lead extends Agent {
  constructor(readonly members: Handle<Member>[]) {
    super();
  }
  @action async roll(): Promise<string[]> {
    return Promise.all(this.members.map((member) => member.name()));
  }
  @action async name(): Promise<string> {
    return "lead";
  }
}

class Member extends Agent {
  constructor(
    readonly lead: Handle<Lead>,
    readonly label: string,
  ) {
    super();
  }
  @action async name(): Promise<string> {
    return this.label;
  }
  @action async leadName(): Promise<string> {
    return this.lead.name();
  }
  @action({ context: true }) async tagged(prefix = "t", ctx?: ActionContext): Promise<string> {
    return `${prefix}:${ctx?.action}`;
  }
}

describe("typed handles of agents that hold each other's handles", () => {
  test("a team launched in one batch calls through its typed proxies", async () => {
    await using manager = await Manager.fromExchangeFactory();
    const [lead, first, second] = await manager.launchBatch([
      { agent: Lead, args: (h: readonly Handle[]) => [[h[1], h[2]]] },
      { agent: Member, args: (h: readonly Handle[]) => [h[0], "first"] },
      { agent: Member, args: (h: readonly Handle[]) => [h[0], "second"] },
    ]);
    const typedLead: Handle<Lead> = lead;
    const typedMember: Handle<Member> = first;
    expect(await typedLead.roll()).toEqual(["first", "second"]);
    expect(await typedMember.leadName()).toBe("lead");
    expect(await second.tagged()).toBe("t:tagged");
    const names: Array<ActionName<Member>> = ["name", "leadName", "tagged", "agentDescribe", "agentStats"];
    expect(names).toHaveLength(5);
    // @ts-expect-error: a member holding a handle is no action (the proxy types it never)
    const callLead = (): unknown => typedMember.lead();
    // @ts-expect-error: nor is a plain property an action name
    const label: ActionName<Member> = "label";
    // @ts-expect-error: the context's place takes no argument
    const shifted = (): unknown => typedMember.tagged("x", {} as ActionContext);
    expect([typeof callLead, typeof shifted, label]).toEqual(["function", "function", "label"]);
  });
});
