/**
 * The NATS permissions each kind of process needs, as the `permissions` block of a user in a
 * nats-server configuration: the subjects it publishes to (messages, JetStream API requests, KV
 * writes, acknowledgements) and subscribes to. docs/NATS-LAYOUT.md section 11 lists them;
 * docs/SECURITY.md says what they protect and what they cannot. The restricted-user fault scenario
 * (`npm run chaos -- --only restricted-user`) runs every role with exactly these permissions.
 */
import { natsLayout } from "./nats-layout.ts";

/** The kinds of NATS users of an exchange. */
export const NatsRole = {
  /** A process that runs agents (a `Manager` with the event-loop or worker-thread executor). It is also a caller. */
  Agent: "agent",
  /** A runtime host (`academy host`, `RuntimeHost`): runs agents of a pool. */
  Host: "host",
  /** A library client that calls agents (`createUserClient`, a `Manager` that runs no agents itself). */
  Caller: "caller",
  /** A caller that also launches agents on host pools (`HostPoolExecutor`) and lists them (`academy hosts`, `academy agents`). */
  Launcher: "launcher",
  /** A program calling agents by the protocol alone, answers to its `replyTo` (PROTOCOL.md 8.1). */
  ForeignCaller: "foreign-caller",
  /** A program calling agents by the protocol alone, answers to a mailbox of its own (PROTOCOL.md 8.2). */
  ForeignMailbox: "foreign-mailbox",
} as const;
/** One of the {@link NatsRole} values. */
export type NatsRole = (typeof NatsRole)[keyof typeof NatsRole];

/** Options of {@link natsPermissions}. */
export interface NatsPermissionsOptions {
  /** What the user runs. */
  readonly role: NatsRole;
  /**
   * The exchange's prefix.
   * @defaultValue "academy"
   */
  readonly prefix?: string;
  /**
   * The user's inbox prefix: set the same `inboxPrefix` in its connection options (nats.js) so that
   * every reply subject and inbox it creates is under it. Give each user its own (`_INBOX.<user>`)
   * and no user can read another's replies.
   * @defaultValue "_INBOX"
   */
  readonly inboxPrefix?: string;
  /**
   * May create the streams and buckets: give it to the process that provisions a prefix first (or
   * provision with an administrator's user); the others only look them up.
   * @defaultValue false
   */
  readonly provision?: boolean;
  /**
   * Agents and hosts: the subjects they may publish responses to, i.e. the `replyTo` subjects of
   * the callers they serve (the callers' inbox prefixes, with `.>`).
   * @defaultValue ["_INBOX.>"]
   */
  readonly replySubjects?: readonly string[];
  /**
   * Foreign callers: the mailboxes (uids) they may send requests to.
   * @defaultValue every mailbox
   */
  readonly mailboxes?: readonly string[];
  /**
   * Foreign callers: whether they may read the registry and the type index (status and discovery,
   * PROTOCOL.md section 9).
   * @defaultValue true
   */
  readonly registry?: boolean;
  /**
   * Hosts and launchers: the pools they serve or launch on.
   * @defaultValue every pool
   */
  readonly pools?: readonly string[];
}

/** A user's `permissions` in a nats-server configuration (allow lists only: everything else is denied). */
export interface NatsUserPermissions {
  readonly publish: { readonly allow: string[] };
  readonly subscribe: { readonly allow: string[] };
}

/**
 * The permissions a NATS user needs for `role` on the exchange under `prefix`, and nothing more.
 * @throws {InvalidConfigError} for an invalid prefix, mailbox uid or pool name.
 */
export function natsPermissions(options: NatsPermissionsOptions): NatsUserPermissions {
  const layout = natsLayout(options.prefix ?? "academy");
  const p = layout.prefix;
  const inbox = options.inboxPrefix ?? "_INBOX";
  const api = "$JS.API";
  const mailboxes = layout.mailboxStream;
  const deadLetters = layout.deadLetterStream;
  const registry = `KV_${layout.registryBucket}`;
  const types = `KV_${layout.typesBucket}`;
  const lists = `KV_${layout.memberListsBucket}`;
  const launches = layout.launchStream;
  const hosts = `KV_${layout.hostsBucket}`;
  const placements = `KV_${layout.placementsBucket}`;
  const state = `KV_${layout.stateBucket}`;
  const reminders = `KV_${layout.remindersBucket}`;
  const results = `KV_${layout.resultsBucket}`;
  const pools = options.pools?.map((pool) => layout.poolConsumer(pool)) ?? ["*"];
  const pub = new Set<string>();
  const sub = new Set<string>([`${inbox}.>`]);
  const streams = (...names: string[]): void => {
    for (const name of names) {
      pub.add(`${api}.STREAM.INFO.${name}`);
      if (options.provision === true) pub.add(`${api}.STREAM.CREATE.${name}`);
    }
  };
  /**
   * Ordered consumers (KV watches, key listings, scans) on a stream: created, deleted when nats.js
   * resets one (after two missed heartbeats or a gap, it deletes the old consumer and makes a new
   * one), answering flow control.
   */
  const orderedConsumers = (stream: string): void => {
    pub.add(`${api}.CONSUMER.CREATE.${stream}.>`);
    pub.add(`${api}.CONSUMER.DELETE.${stream}.*`);
    pub.add(`$JS.FC.${stream}.>`);
  };

  switch (options.role) {
    case NatsRole.ForeignCaller:
    case NatsRole.ForeignMailbox: {
      pub.add(`${api}.INFO`);
      for (const uid of options.mailboxes ?? ["*"]) pub.add(uid === "*" ? `${p}.mbox.*` : layout.mailboxSubject(uid));
      if (options.registry !== false) {
        // Status (a direct get, or a read at the leader) and the type index (list, then read; or
        // its member lists, read by name).
        for (const stream of [registry, types, lists]) {
          pub.add(`${api}.DIRECT.GET.${stream}`);
          pub.add(`${api}.DIRECT.GET.${stream}.>`);
          pub.add(`${api}.STREAM.MSG.GET.${stream}`);
        }
        pub.add(`${api}.STREAM.INFO.${types}`);
      }
      if (options.role === NatsRole.ForeignMailbox) {
        // Its own user record, its mailbox's consumer (delivering under its inbox prefix), acks,
        // and termination: the record updated, the consumer deleted, the subject purged.
        pub.add(`$KV.${layout.registryBucket}.*`);
        pub.add(`${api}.STREAM.MSG.GET.${registry}`);
        pub.add(`${api}.CONSUMER.CREATE.${mailboxes}.*.${p}.mbox.*`);
        pub.add(`${api}.CONSUMER.INFO.${mailboxes}.*`);
        pub.add(`${api}.CONSUMER.DELETE.${mailboxes}.*`);
        pub.add(`$JS.ACK.${mailboxes}.>`);
        pub.add(`${api}.STREAM.PURGE.${mailboxes}`);
      }
      break;
    }
    case NatsRole.Agent:
    case NatsRole.Host:
    case NatsRole.Caller:
    case NatsRole.Launcher: {
      pub.add(`${api}.INFO`);
      // Every library process looks up the buckets a provisioning process makes with the others
      // (results, state, reminders), whether or not it uses them.
      streams(mailboxes, deadLetters, registry, types, lists, results, state, reminders);
      // Mailboxes: send, read (a push consumer per mailbox, made anew by each reader), acknowledge,
      // dead-letter, terminate (walk the stranded requests, purge).
      pub.add(`${p}.mbox.*`);
      pub.add(`${api}.CONSUMER.CREATE.${mailboxes}.*.${p}.mbox.*`);
      pub.add(`${api}.CONSUMER.INFO.${mailboxes}.*`);
      pub.add(`${api}.CONSUMER.DELETE.${mailboxes}.*`);
      pub.add(`$JS.ACK.${mailboxes}.>`);
      pub.add(`${p}.dlq.*`);
      pub.add(`${api}.STREAM.MSG.GET.${mailboxes}`);
      pub.add(`${api}.STREAM.PURGE.${mailboxes}`);
      sub.add(`${p}.deliver.>`);
      sub.add(`$JS.EVENT.ADVISORY.CONSUMER.DELETED.${mailboxes}.*`);
      // Leader changes, after which a reader looks for messages behind its consumer (the mailboxes
      // holding messages by STREAM.INFO, above; the first sequence of its subject by
      // STREAM.MSG.GET, its consumer by CONSUMER.INFO).
      sub.add(`$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${mailboxes}.*`);
      sub.add(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${mailboxes}`);
      // Registry and type index: records and index entries written, read at the leader, watched
      // (the registry view) and scanned; index entries purged at termination (and, by a
      // provisioning process, the member lists an earlier version kept in the types bucket).
      pub.add(`$KV.${layout.registryBucket}.*`);
      pub.add(`$KV.${layout.typesBucket}.>`);
      pub.add(`${api}.STREAM.MSG.GET.${registry}`);
      pub.add(`${api}.STREAM.MSG.GET.${types}`);
      pub.add(`${api}.STREAM.PURGE.${types}`);
      // The type index's member lists and catalog (layout 2, their own bucket): written by
      // compare-and-set, read at the leader before each and by cold discovery.
      pub.add(`$KV.${layout.memberListsBucket}.>`);
      pub.add(`${api}.STREAM.MSG.GET.${lists}`);
      orderedConsumers(registry);
      orderedConsumers(types);
      if (options.role === NatsRole.Agent || options.role === NatsRole.Host) {
        // Responses to callers without a mailbox (and to library clients with replies: "core").
        for (const subject of options.replySubjects ?? ["_INBOX.>"]) pub.add(subject);
        // Result records of effectively-once actions: written, read at the leader (a direct get
        // where the bucket has one replica).
        pub.add(`$KV.${layout.resultsBucket}.>`);
        pub.add(`${api}.STREAM.MSG.GET.${results}`);
        pub.add(`${api}.DIRECT.GET.${results}.>`);
      }
      if (options.role === NatsRole.Agent || options.role === NatsRole.Host || options.role === NatsRole.Launcher) {
        // Durable state and reminders (docs/STATE.md): read at the leader, reminders listed (a
        // scan) and, by agents' schedulers, watched.
        pub.add(`${api}.STREAM.MSG.GET.${state}`);
        pub.add(`${api}.STREAM.MSG.GET.${reminders}`);
        orderedConsumers(reminders);
      }
      if (options.role === NatsRole.Agent || options.role === NatsRole.Host) {
        // State records written by compare-and-set (and purged with the mailbox); reminders set,
        // moved on and deleted. Fires go to the mailboxes (`<p>.mbox.*`).
        pub.add(`$KV.${layout.stateBucket}.*`);
        pub.add(`$KV.${layout.remindersBucket}.>`);
      }
      if (options.role === NatsRole.Host || options.role === NatsRole.Launcher) {
        streams(launches, hosts, placements);
        // Launch requests published (a launch, a hand-over), placements and host records read at
        // the leader, written, watched and scanned.
        for (const pool of options.pools ?? ["*"]) pub.add(pool === "*" ? `${p}.launch.>` : `${p}.launch.${pool}.*`);
        pub.add(`$KV.${layout.placementsBucket}.>`);
        pub.add(`${api}.STREAM.MSG.GET.${hosts}`);
        pub.add(`${api}.STREAM.MSG.GET.${placements}`);
        orderedConsumers(hosts);
        orderedConsumers(placements);
      }
      if (options.role === NatsRole.Host) {
        // Its own record, rewritten at every heartbeat; the records of the hosts it reaps.
        pub.add(`$KV.${layout.hostsBucket}.*`);
        // The pool's consumer (made by the first host), fetched from and acknowledged; the last
        // request of an agent looked up by the sweep; rejected launches dead-lettered.
        for (const pool of pools) {
          pub.add(`${api}.CONSUMER.INFO.${launches}.${pool}`);
          pub.add(`${api}.CONSUMER.CREATE.${launches}.${pool}.>`);
          pub.add(`${api}.CONSUMER.MSG.NEXT.${launches}.${pool}`);
        }
        pub.add(`$JS.ACK.${launches}.>`);
        pub.add(`${api}.STREAM.MSG.GET.${launches}`);
        pub.add(`${p}.dlq.launch.*`);
      }
      break;
    }
    default: {
      const never: never = options.role;
      throw new TypeError(`Unknown role ${String(never)}`);
    }
  }
  return { publish: { allow: [...pub] }, subscribe: { allow: [...sub] } };
}
