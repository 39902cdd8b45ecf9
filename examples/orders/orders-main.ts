import { startOrdersProcess } from "./orders-process.js";

/**
 * Runs the example process on its own:
 * `node dist/examples/orders/orders-main.js [host:port] [database file]`
 * (defaults 127.0.0.1:50061 and .sessionbridge/orders.db, beside the bridge's sessions).
 * Prints one JSON line when it is listening.
 */
const address = process.argv[2] ?? "127.0.0.1:50061";
const databaseFile = process.argv[3] ?? ".sessionbridge/orders.db";
const orders = await startOrdersProcess({ address, databaseFile });
process.stdout.write(
  `${JSON.stringify({ msg: "orders process ready", port: orders.port, pid: process.pid, databaseFile })}\n`,
);
const stop = async (): Promise<void> => {
  await orders.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
