/**
 * Where everything lives on NATS: every stream, bucket, subject and consumer name, derived from
 * one prefix so that several deployments can share an account. docs/NATS-LAYOUT.md describes it.
 */
import { InvalidConfigError } from "../../errors.ts";
import { checkPool } from "../../pool/pool-name.ts";

/** Names derived from a prefix. */
export interface NatsLayout {
  readonly prefix: string;
  /** Work-queue stream holding every mailbox. */
  readonly mailboxStream: string;
  /** Wildcard subject of the mailbox stream. */
  readonly mailboxSubjects: string;
  /** Limits stream keeping dead-lettered messages. */
  readonly deadLetterStream: string;
  /** Wildcard subject of the dead-letter stream. */
  readonly deadLetterSubjects: string;
  /** KV bucket: one record per mailbox (role, name, type, ancestry, status). */
  readonly registryBucket: string;
  /** KV bucket: type index, one key per (type in an agent's ancestry, agent); sites mirror it. */
  readonly typesBucket: string;
  /**
   * KV bucket: the type index's member lists (catalog, lists per concrete type, ready marker),
   * kept by compare-and-set, so never mirrored by other sites (docs/EDGE.md 4).
   */
  readonly memberListsBucket: string;
  /** Work-queue stream of agent launch requests, for every pool of runtime hosts. */
  readonly launchStream: string;
  /** Wildcard subject of the launch stream. */
  readonly launchSubjects: string;
  /** KV bucket: one record per runtime host (pool, capacity, load, types, heartbeat). */
  readonly hostsBucket: string;
  /** KV bucket: one placement per launched agent, key `<pool>.<uid>` (state, host, launch spec). */
  readonly placementsBucket: string;
  /** KV bucket: one durable state record per agent, key `<uid>` (docs/STATE.md). */
  readonly stateBucket: string;
  /** KV bucket: one record per reminder, key `<uid>.<name>` (docs/STATE.md). */
  readonly remindersBucket: string;
  /**
   * KV bucket: the response to each completed action request, key `<agent uid>.<tag>`, kept for
   * the result window (effectively-once execution).
   */
  readonly resultsBucket: string;
  /** Subject of a mailbox. */
  mailboxSubject(uid: string): string;
  /** Durable consumer that reads a mailbox. */
  mailboxConsumer(uid: string): string;
  /** Core subject a mailbox's push consumer delivers to, unique to one reader (`session`). */
  deliverSubject(uid: string, session: string): string;
  /** Subject messages dead-lettered from a mailbox go to. */
  deadLetterSubject(uid: string): string;
  /** Where the events an agent's subscriptions set aside go (docs/EVENTS.md). */
  eventDeadLetterSubject(uid: string): string;
  /** Durable consumer of one agent's subscription (group `each`). */
  eventConsumer(uid: string, handler: string): string;
  /** Durable consumer the agents of a type share for one subscription (group `shared`). */
  sharedEventConsumer(agentType: string, handler: string): string;
  /** Durable consumer the keyed routers of one agent type's subscription share. */
  routerConsumer(agentType: string, handler: string): string;
  /** Core queue group of a `shared` core subscription. */
  eventQueue(agentType: string, handler: string): string;
  /** Stream where routers copy the events of keyed subscriptions whose key is a payload field (docs/EVENTS.md 5). */
  readonly keyedStream: string;
  readonly keyedSubjects: string;
  /** Where the events of one key of such a subscription are copied. */
  keyedEventSubject(agentType: string, handler: string, key: string): string;
  /** Subjects of the JSON entry point of an agent type: `<prefix>.json.<type>.<agent uid or key>` (docs/PROTOCOL.md). */
  jsonCallSubjects(agentType: string): string;
  /** Subject of a launch request of agent `uid` on `pool`. */
  launchSubject(pool: string, uid: string): string;
  /** Wildcard subject of a pool's launch requests (the pool consumer's filter). */
  poolSubjects(pool: string): string;
  /** Durable consumer the hosts of a pool share. */
  poolConsumer(pool: string): string;
  /** Subject rejected launch requests of a pool are dead-lettered to. */
  poolDeadLetterSubject(pool: string): string;
  /** Placement key of agent `uid` on `pool`. */
  placementKey(pool: string, uid: string): string;
  /** Key filter matching agent `uid`'s placements on every pool. */
  placementsOf(uid: string): string;
  /** Limits stream of messages this site sends to `site`, mirrored by that site (docs/EDGE.md). */
  outboxStream(site: string): string;
  /** Wildcard subject of the outbox to `site`. */
  outboxSubjects(site: string): string;
  /** Subject of a message to mailbox `uid` of `site`, in the outbox to `site`. */
  outboxMailboxSubject(site: string, uid: string): string;
  /** Subject of a launch request of agent `uid` on `pool` of `site`, in the outbox to `site`. */
  outboxLaunchSubject(site: string, pool: string, uid: string): string;
  /** Mirror (in this site's domain) of the outbox `site` keeps for this site. */
  inboxStream(site: string): string;
  /** Durable consumer on an inbox that the relays of this site share. */
  readonly relayConsumer: string;
}

const PREFIX = /^[A-Za-z0-9_-]{1,48}$/;
const UID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The layout for `prefix`.
 * @throws {InvalidConfigError} unless the prefix is 1-48 characters of `[A-Za-z0-9_-]`.
 */
export function natsLayout(prefix: string): NatsLayout {
  if (!PREFIX.test(prefix)) {
    throw new InvalidConfigError(`prefix must be 1-48 characters of [A-Za-z0-9_-] (got ${JSON.stringify(prefix)})`, {
      option: "prefix",
    });
  }
  return {
    prefix,
    mailboxStream: `${prefix}_mailboxes`,
    mailboxSubjects: `${prefix}.mbox.*`,
    deadLetterStream: `${prefix}_dead_letters`,
    deadLetterSubjects: `${prefix}.dlq.>`,
    registryBucket: `${prefix}_registry`,
    typesBucket: `${prefix}_types`,
    memberListsBucket: `${prefix}_type_lists`,
    resultsBucket: `${prefix}_results`,
    mailboxSubject: (uid) => `${prefix}.mbox.${checkUid(uid)}`,
    mailboxConsumer: (uid) => `mbox-${checkUid(uid)}`,
    deliverSubject: (uid, session) => `${prefix}.deliver.${checkUid(uid)}.${checkUid(session)}`,
    deadLetterSubject: (uid) => `${prefix}.dlq.${checkUid(uid)}`,
    eventDeadLetterSubject: (uid) => `${prefix}.dlq.event.${checkUid(uid)}`,
    eventConsumer: (uid, handler) => `${prefix}_ev_${checkUid(uid)}_${nameToken(handler)}`,
    sharedEventConsumer: (agentType, handler) => `${prefix}_evs_${nameToken(agentType)}_${nameToken(handler)}`,
    routerConsumer: (agentType, handler) => `${prefix}_route_${nameToken(agentType)}_${nameToken(handler)}`,
    eventQueue: (agentType, handler) => `${prefix}.evq.${nameToken(agentType)}.${nameToken(handler)}`,
    jsonCallSubjects: (agentType) => `${prefix}.json.${nameToken(agentType)}.*`,
    keyedStream: `${prefix}_keyed`,
    keyedSubjects: `${prefix}.keyed.>`,
    keyedEventSubject: (agentType, handler, key) => `${prefix}.keyed.${nameToken(agentType)}.${nameToken(handler)}.${key}`,
    launchStream: `${prefix}_launches`,
    launchSubjects: `${prefix}.launch.>`,
    hostsBucket: `${prefix}_hosts`,
    placementsBucket: `${prefix}_placements`,
    stateBucket: `${prefix}_state`,
    remindersBucket: `${prefix}_reminders`,
    launchSubject: (pool, uid) => `${prefix}.launch.${checkPool(pool)}.${checkUid(uid)}`,
    poolSubjects: (pool) => `${prefix}.launch.${checkPool(pool)}.*`,
    poolConsumer: (pool) => `pool-${checkPool(pool)}`,
    poolDeadLetterSubject: (pool) => `${prefix}.dlq.launch.${checkPool(pool)}`,
    placementKey: (pool, uid) => `${checkPool(pool)}.${checkUid(uid)}`,
    placementsOf: (uid) => `*.${checkUid(uid)}`,
    outboxStream: (site) => `${prefix}_out_${checkSite(site)}`,
    outboxSubjects: (site) => `${prefix}.out.${checkSite(site)}.>`,
    outboxMailboxSubject: (site, uid) => `${prefix}.out.${checkSite(site)}.mbox.${checkUid(uid)}`,
    outboxLaunchSubject: (site, pool, uid) => `${prefix}.out.${checkSite(site)}.launch.${checkPool(pool)}.${checkUid(uid)}`,
    inboxStream: (site) => `${prefix}_in_${checkSite(site)}`,
    relayConsumer: "relay",
  };
}

/**
 * Check a site name: a site is named by its prefix, so the same rule holds.
 * @throws {InvalidConfigError} unless it is 1-48 characters of `[A-Za-z0-9_-]`.
 */
export function checkSite(site: string): string {
  if (typeof site !== "string" || !PREFIX.test(site)) {
    throw new InvalidConfigError(`A site name (its prefix) must be 1-48 characters of [A-Za-z0-9_-] (got ${JSON.stringify(site)})`, {
      option: "sites",
    });
  }
  return site;
}

/**
 * Check a JetStream domain name (it becomes a token of `$JS.<domain>.API`).
 * @throws {InvalidConfigError} unless it is 1-48 characters of `[A-Za-z0-9_-]`.
 */
export function checkDomain(domain: string, option = "domain"): string {
  if (typeof domain !== "string" || !PREFIX.test(domain)) {
    throw new InvalidConfigError(`A JetStream domain must be 1-48 characters of [A-Za-z0-9_-] (got ${JSON.stringify(domain)})`, { option });
  }
  return domain;
}

/** Mailbox uids become subject tokens and consumer names: reject anything that could escape. */
/**
 * A type or method name as a consumer-name token: characters outside `[A-Za-z0-9_-]` become `_`,
 * followed by a short hash of the name when any was replaced (so that two names stay apart).
 */
function nameToken(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]/g, "_");
  if (safe === name) return name;
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (Math.imul(hash, 31) + name.charCodeAt(i)) >>> 0;
  return `${safe}-${hash.toString(36)}`;
}

function checkUid(uid: string): string {
  if (!UID.test(uid)) throw new InvalidConfigError(`Invalid mailbox uid ${JSON.stringify(uid)}`, { option: "uid" });
  return uid;
}
