/**
 * The agents of the events example (README.md beside this file): `OrderWorker`s share the orders
 * a plain publisher puts into the ORDERS stream and price them; a `Customer` agent per customer
 * id, launched on demand by keyed routing, keeps that customer's totals and publishes them.
 */
import { Agent, action, subscribe } from "../../src/index.ts";
import type { EventContext } from "../../src/index.ts";

/** An order as the outside publisher sends it (JSON on `orders.new.<customer>`). */
export interface Order {
  readonly id: string;
  readonly customer: string;
  readonly items: ReadonlyArray<{ readonly sku: string; readonly qty: number; readonly price: number }>;
}

/** A priced order, as the workers publish it on `orders.priced.<customer>`. */
export interface PricedOrder {
  readonly id: string;
  readonly customer: string;
  readonly amount: number;
}

/** What a customer's agent publishes on `results.customer.<id>` after each order. */
export interface CustomerTotals {
  readonly customer: string;
  readonly orders: number;
  readonly total: number;
  readonly lastOrder: string;
}

/** Prices new orders; the workers of the type share them (each order goes to one of them). */
export class OrderWorker extends Agent {
  priced = 0;

  @subscribe("orders.new.*", { stream: "ORDERS", group: "shared", start: "all" })
  async price(order: Order, ctx: EventContext): Promise<void> {
    if (typeof order.id !== "string" || !Array.isArray(order.items)) throw new TypeError(`order ${ctx.sequence} is not an order`);
    const amount = Math.round(order.items.reduce((sum, item) => sum + item.qty * item.price, 0) * 100) / 100;
    const priced: PricedOrder = { id: order.id, customer: order.customer, amount };
    // Stored once even if this order is handled again (a redelivery after a crash).
    await this.agentContext.publish(`orders.priced.${order.customer}`, priced, { durable: true, msgId: `priced:${order.id}` });
    this.priced++;
  }

  @action async pricedCount(): Promise<number> {
    return this.priced;
  }
}

/** One per customer (keyed by the subject's third token): the customer's running totals. */
export class Customer extends Agent {
  orders = 0;
  total = 0;

  @subscribe("orders.priced.*", { stream: "ORDERS", key: { token: 2 }, pool: "customers" })
  async add(order: PricedOrder, ctx: EventContext): Promise<void> {
    this.orders++;
    this.total = Math.round((this.total + order.amount) * 100) / 100;
    const totals: CustomerTotals = { customer: ctx.key!, orders: this.orders, total: this.total, lastOrder: order.id };
    await this.agentContext.publish(`results.customer.${ctx.key}`, totals);
  }

  @action async totals(): Promise<{ orders: number; total: number }> {
    return { orders: this.orders, total: this.total };
  }
}
