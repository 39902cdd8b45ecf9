#!/usr/bin/env node
import { readFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { DEFAULT_GRPC_ADDRESS, DEFAULT_HTTP_ADDRESS } from "../bridge/config/config.js";
import { packageRoot } from "../bridge/util/package-root.js";
import { ExitCode } from "./exit-codes.js";

const io = { out: process.stdout, err: process.stderr };

// `sessionbridge sessions … | head`: once the reader is gone there is nobody left to tell,
// so the command ends quietly instead of failing on EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(ExitCode.OK);
    throw error;
  });
}

const ID_HELP = 'session id (one that starts with "-", from an older version, goes after "--": show -- -abc)';

function packageVersion(): string {
  const file = path.join(packageRoot(), "package.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

function positiveInteger(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

const EXIT_CODES = `
Exit codes:
  0  success
  1  the command failed (bridge unreachable, session not found, start-up failure,
     a drain cut short by a third signal)
  2  invalid command line, configuration or contracts`;

function program(): Command {
  const root = new Command("sessionbridge")
    .description("Sessions for polyglot services: correlated, ordered, durable exchanges over gRPC")
    .version(packageVersion())
    .addHelpText("after", EXIT_CODES)
    .exitOverride()
    .showHelpAfterError();

  root
    .command("start")
    .description(
      "run the bridge until SIGTERM or SIGINT, then drain and stop (a second signal is ignored, a third forces the exit)",
    )
    .option(
      "-c, --config <file>",
      "configuration file (default: ./sessionbridge.yaml if present, else embedded defaults)",
    )
    .option("--grpc <addr>", `gRPC listen address host:port (default: ${DEFAULT_GRPC_ADDRESS})`)
    .option(
      "--http <addr>",
      `HTTP listen address host:port for Connect, gRPC-Web and HTTP/JSON calls, or off (default: ${DEFAULT_HTTP_ADDRESS})`,
    )
    .option("--http-tls-cert <file>", "PEM certificate chain: serve HTTP over TLS (HTTP/1.1 and h2 by ALPN)")
    .option("--http-tls-key <file>", "PEM private key of --http-tls-cert")
    .option(
      "--store <store>",
      "memory, sqlite:PATH or jetstream[:PREFIX] (default: sqlite:./.sessionbridge/sessions.db)",
    )
    .option(
      "--nats <url>",
      "NATS server URL(s), comma-separated: serve the contracts on NATS too and reach nats:// processes",
    )
    .option(
      "--replica <name>",
      "this bridge is one replica of several sharing the jetstream store: its unique name (cluster.replica)",
    )
    .addOption(
      new Option("--drain-ms <ms>", "how long calls in flight may take to finish on shutdown")
        .argParser(positiveInteger("--drain-ms", 0))
        .default(10_000),
    )
    .addHelpText("after", EXIT_CODES)
    .action(
      async (options: {
        config?: string;
        grpc?: string;
        http?: string;
        httpTlsCert?: string;
        httpTlsKey?: string;
        store?: string;
        nats?: string;
        replica?: string;
        drainMs: number;
      }) => {
        const { startCommand } = await import("./start-command.js");
        process.exitCode = await startCommand(options, io.err);
      },
    );

  root
    .command("validate")
    .description("check the configuration and its contracts without starting anything")
    .option(
      "-c, --config <file>",
      "configuration file (default: ./sessionbridge.yaml if present, else embedded defaults)",
    )
    .addHelpText("after", EXIT_CODES)
    .action(async (options: { config?: string }) => {
      const { validateCommand } = await import("./validate-command.js");
      process.exitCode = validateCommand(options, io.out, io.err);
    });

  const sessions = root
    .command("sessions")
    .description("inspect and manage the sessions of a running bridge");
  const bridgeOption = () =>
    new Option("--bridge <addr>", "the bridge's gRPC address").default(DEFAULT_GRPC_ADDRESS);
  const jsonOption = () =>
    new Option(
      "--json",
      "print one JSON object per line (payloads as protobuf JSON, via the bridge's reflection)",
    );

  sessions
    .command("list")
    .description("sessions, newest first")
    .option("--service <name>", "only sessions of this service (full name)")
    .option("--state <state>", "only sessions in this state: active, closed or expired")
    .option(
      "--page-size <n>",
      "one page of this many sessions (1-1000); stderr says how to get the next (default: every page)",
      positiveInteger("--page-size"),
    )
    .option("--page-token <token>", "continue from a previous page")
    .option("--all", "every page, also with --page-size")
    .addOption(bridgeOption())
    .addOption(jsonOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (options) => {
      const { sessionsList } = await import("./sessions-command.js");
      process.exitCode = await sessionsList(options, io);
    });

  sessions
    .command("show")
    .description("one session")
    .argument("<id>", ID_HELP)
    .addOption(bridgeOption())
    .addOption(jsonOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (id: string, options) => {
      const { sessionsShow } = await import("./sessions-command.js");
      process.exitCode = await sessionsShow(id, options, io);
    });

  sessions
    .command("history")
    .description("a session's journal; with --follow, new entries as they are recorded")
    .argument("<id>", ID_HELP)
    .option("-f, --follow", "keep streaming until the session ends (Ctrl-C to stop)")
    .option("--from <index>", "start at this journal index (1-based)", positiveInteger("--from"))
    .addOption(bridgeOption())
    .addOption(jsonOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (id: string, options) => {
      const { sessionsHistory } = await import("./sessions-command.js");
      process.exitCode = await sessionsHistory(id, options, io);
    });

  sessions
    .command("close")
    .description("end a session; queued messages get ABORTED (idempotent)")
    .argument("<id>", ID_HELP)
    .addOption(bridgeOption())
    .addOption(jsonOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (id: string, options) => {
      const { sessionsClose } = await import("./sessions-command.js");
      process.exitCode = await sessionsClose(id, options, io);
    });

  root
    .command("conformance")
    .description("the conformance suite: check a service in any language keeps the session rules")
    .command("run")
    .description("run the cases against targets (conformance/targets/*.yaml) or a running endpoint")
    .option("--target <file...>", "target files (conformance/targets/<name>.yaml)")
    .option(
      "--endpoint <url>",
      "a running service: grpc://HOST:PORT, http://HOST:PORT or nats://HOST:PORT/PREFIX (direct mode)",
    )
    .addOption(
      new Option("--mode <mode>", "direct, bridged or all")
        .choices(["direct", "bridged", "all"])
        .default("all"),
    )
    .option("--inbound <transport...>", "only these inbound transports (grpc, http, nats)")
    .option("--outbound <transport...>", "only these outbound transports (grpc, http, nats)")
    .option("--cases <glob>", "only case ids matching this glob, e.g. 'sequence/*'")
    .option("--cases-dir <dir>", "where the cases are (default: conformance/cases)")
    .option(
      "--sample <n|fraction>",
      "run only this many (or this fraction) of the planned runs, drawn with --seed",
    )
    .addOption(
      new Option("--seed <n>", "seed of --sample").argParser(positiveInteger("--seed", 0)).default(1),
    )
    .addOption(
      new Option("--parallel <n>", "cases at once per environment")
        .argParser(positiveInteger("--parallel"))
        .default(4),
    )
    .addOption(
      new Option("--time-scale <x>", "multiplies the contract's timeouts in expiry cases")
        .argParser((v: string) => {
          const n = Number(v);
          if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--time-scale must be in (0, 1], got ${v}`);
          return n;
        })
        .default(0.002),
    )
    .option("--report-dir <dir>", "where the JSON, JUnit and HTML reports go", ".tools/conformance/reports")
    .addHelpText("after", EXIT_CODES)
    .action(async (options) => {
      const { conformanceRun } = await import("./conformance-command.js");
      process.exitCode = await conformanceRun(options, io);
    });

  return root;
}

// Commands load their modules on demand: `sessions list` never pays for the engine.
async function main(argv: readonly string[]): Promise<void> {
  const root = program();
  // Commands inherit exitOverride so usage errors come back here as exit code 2.
  for (const command of root.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  try {
    await root.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      const asked =
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help";
      process.exitCode = asked ? ExitCode.OK : ExitCode.INVALID;
      if (error.code === "commander.unknownOption" && argv.includes("sessions")) {
        process.stderr.write('(a session id that starts with "-" goes after "--": sessions show -- -abc)\n');
      }
      return;
    }
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = ExitCode.FAILURE;
  }
}

void main(process.argv);
