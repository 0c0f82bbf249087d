/**
 * `academy dashboard`: serve the live page of a deployment (`dashboard.ts`) until SIGTERM or
 * SIGINT. It prints where to open it; logs (pino JSON, `--log-level`) go to stderr.
 */
import { pino } from "pino";
import type { ConnectionValues } from "./cli-connection.ts";
import { exchangeOptions } from "./cli-connection.ts";
import { integerOption } from "./cli-options.ts";
import { ExitCode, UsageError } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";
import { Dashboard } from "./dashboard.ts";

/** The options of `academy dashboard`, as commander parsed them. */
export interface DashboardValues extends ConnectionValues {
  port?: string;
  bind?: string;
  logLevel?: string;
  json?: boolean;
}

/** Serve the dashboard until a signal; exit code 0. */
export async function runDashboard(output: Output, values: DashboardValues): Promise<number> {
  const port = integerOption(values.port, "port") ?? 8080;
  if (port > 65_535) throw new UsageError(`--port must be at most 65535 (got ${port})`);
  const logger = pino({ level: values.logLevel ?? "info", base: { pid: process.pid } }, pino.destination(2));
  const exchange = exchangeOptions(values, "academy-dashboard");
  let dashboard: Dashboard;
  try {
    dashboard = await Dashboard.start({ port, host: values.bind, exchange, logger });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      throw new UsageError(`--port ${port}${values.bind === undefined ? "" : ` --bind ${values.bind}`}: cannot listen (${code})`);
    }
    throw error;
  }
  if (values.json === true) output.out(JSON.stringify({ url: dashboard.url, prefix: exchange.prefix ?? "academy" }));
  else output.out(`academy dashboard: ${dashboard.url} (prefix ${exchange.prefix ?? "academy"}; Ctrl-C stops it)`);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await dashboard.close();
  logger.flush();
  return ExitCode.Ok;
}
