import { startOrdersProcess } from "./orders-process.js";

/**
 * Runs the example process on its own: `node dist/examples/orders/orders-main.js [host:port]`
 * (default 127.0.0.1:50061). Prints one JSON line when it is listening.
 */
const address = process.argv[2] ?? "127.0.0.1:50061";
const orders = await startOrdersProcess(address);
process.stdout.write(`${JSON.stringify({ msg: "orders process ready", port: orders.port })}\n`);
const stop = async (): Promise<void> => {
  await orders.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
