/**
 * Credentials and TLS of a NATS connection, from plain options (strings and file paths) that can
 * cross to worker threads: the worker rebuilding a factory from its descriptor reads the same
 * files and gets the same authenticator. Files are read, and credentials checked for form, when
 * the factory is made, so a bad path or seed is an `InvalidConfigError` naming the option rather
 * than a failed connection later.
 */
import { readFileSync } from "node:fs";
import { AuthorizationError, UserAuthenticationExpiredError, credsAuthenticator, nkeyAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator } from "@nats-io/nats-core";
import type { Authenticator, TlsOptions } from "@nats-io/nats-core";
import { InvalidConfigError } from "../../errors.ts";

/** TLS files of a connection (PEM). */
export interface NatsTlsFiles {
  /** CA certificate(s) to verify the server with. @defaultValue Node's trusted CAs */
  caFile?: string;
  /** Client certificate, for servers that verify clients (`verify: true`); needs `keyFile`. */
  certFile?: string;
  /** The client certificate's private key; needs `certFile`. */
  keyFile?: string;
}

/**
 * How a connection authenticates: at most one of a user and password, a token, an nkey seed
 * file or a creds file; and TLS. Every field is a string, so these options reach worker threads.
 */
export interface NatsAuthOptions {
  /** User name (`authorization { users = [...] }`), with {@link password}. */
  user?: string;
  /** The user's password. */
  password?: string;
  /** An authorization token. */
  token?: string;
  /** Path of a file holding an nkey seed (`SU...`), for servers that list the user's public nkey. */
  nkeySeedFile?: string;
  /**
   * Path of a NATS credentials file (a user JWT and its nkey seed, as `nsc` writes them), for
   * servers in operator mode.
   */
  credsFile?: string;
  /**
   * Connect with TLS. Given (even empty), TLS is required; a `tls://` server URL asks for it too.
   * @defaultValue no TLS unless the server requires it
   */
  tls?: NatsTlsFiles;
}

/** What the connection options get from {@link NatsAuthOptions}. */
export interface ResolvedAuth {
  readonly authenticator?: Authenticator;
  readonly tls?: TlsOptions;
}

/**
 * Server URLs without their user information, and the credentials it carried: `user:password@`
 * gives a user and password, a lone `token@` a token (nats.js does not read credentials from
 * URLs itself). URLs that cannot be parsed are left as they are, for the client to refuse.
 */
export function splitUrlCredentials(servers: readonly string[]): { servers: string[]; auth: Pick<NatsAuthOptions, "user" | "password" | "token"> } {
  let auth: Pick<NatsAuthOptions, "user" | "password" | "token"> = {};
  const stripped = servers.map((server) => {
    let url: URL;
    try {
      url = new URL(server.includes("://") ? server : `nats://${server}`);
    } catch {
      return server;
    }
    if (url.username === "" && url.password === "") return server;
    const user = decodeURIComponent(url.username);
    auth = url.password === "" ? { token: user } : { user, password: decodeURIComponent(url.password) };
    url.username = "";
    url.password = "";
    return url.href.replace(/\/$/, "");
  });
  return { servers: stripped, auth };
}

/** Read a credentials or TLS file, or fail naming the option it came from. */
function readOptionFile(path: string, option: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidConfigError(`Cannot read the ${what} ${path}: ${(error as Error).message}`, { option, cause: error });
  }
}

/** Call the authenticator once, as the client will on connect, to find malformed credentials now. */
function checked(authenticator: Authenticator, option: string, what: string): Authenticator {
  try {
    authenticator("academy-check");
  } catch (error) {
    throw new InvalidConfigError(`The ${what} is not valid: ${(error as Error).message}`, { option, cause: error });
  }
  return authenticator;
}

/**
 * The authenticator and TLS options of `options`.
 * @throws {InvalidConfigError} (with `option`) when more than one way to authenticate is given, a
 *   password comes without a user, a file cannot be read, a seed or creds file is malformed, or a
 *   client certificate comes without its key (or the other way round).
 */
export function resolveAuth(options: NatsAuthOptions): ResolvedAuth {
  const given = (["user", "token", "nkeySeedFile", "credsFile"] as const).filter((key) => options[key] !== undefined);
  if (given.length > 1) {
    throw new InvalidConfigError(`Give one way to authenticate, not several: ${given.join(", ")}`, { option: given[1]! });
  }
  if (options.password !== undefined && options.user === undefined) {
    throw new InvalidConfigError("password needs a user", { option: "password" });
  }
  let authenticator: Authenticator | undefined;
  if (options.user !== undefined) {
    authenticator = usernamePasswordAuthenticator(options.user, options.password);
  } else if (options.token !== undefined) {
    authenticator = tokenAuthenticator(options.token);
  } else if (options.nkeySeedFile !== undefined) {
    const seed = readOptionFile(options.nkeySeedFile, "nkeySeedFile", "nkey seed file").trim();
    authenticator = checked(nkeyAuthenticator(new TextEncoder().encode(seed)), "nkeySeedFile", `nkey seed in ${options.nkeySeedFile}`);
  } else if (options.credsFile !== undefined) {
    const creds = readOptionFile(options.credsFile, "credsFile", "NATS credentials file");
    authenticator = checked(credsAuthenticator(new TextEncoder().encode(creds)), "credsFile", `credentials file ${options.credsFile}`);
  }
  return { ...(authenticator !== undefined && { authenticator }), ...(options.tls !== undefined && { tls: resolveTls(options.tls) }) };
}

function resolveTls(files: NatsTlsFiles): TlsOptions {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new InvalidConfigError("A TLS client certificate needs its key: give both certFile and keyFile", {
      option: files.certFile === undefined ? "tls.certFile" : "tls.keyFile",
    });
  }
  const tls: TlsOptions = {};
  if (files.caFile !== undefined) tls.ca = readOptionFile(files.caFile, "tls.caFile", "TLS CA file");
  if (files.certFile !== undefined) tls.cert = readOptionFile(files.certFile, "tls.certFile", "TLS certificate file");
  if (files.keyFile !== undefined) tls.key = readOptionFile(files.keyFile, "tls.keyFile", "TLS key file");
  return tls;
}

/**
 * Whether a connection error means the server refused the credentials (an authorization
 * violation, or an expired user JWT), by the nats.js error class.
 */
export function isAuthenticationError(error: unknown): boolean {
  if (error instanceof AuthorizationError || error instanceof UserAuthenticationExpiredError) return true;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && cause !== error && isAuthenticationError(cause);
}
