/** Where everything listens, for the hint npm start prints once the example is ready. */
export interface WalkthroughAddresses {
  /** The grpcurl and nats commands: .tools/bin/… when installed there, else from PATH. */
  readonly grpcurl: string;
  readonly nats: string;
  readonly bridgeAddress: string;
  readonly httpAddress: string;
  readonly natsUrl: string;
  readonly ordersAddress: string;
  readonly inventoryAddress: string;
}

/**
 * What npm start prints once the bridge and the three processes are ready: one order
 * crossing the three languages, each service called over the transport its process
 * speaks (any inbound transport reaches any process; these are just the natural pairs).
 * The README's walkthrough is the longer version.
 */
export function walkthroughHint(a: WalkthroughAddresses): string {
  const json = "-H 'Content-Type: application/json'";
  return [
    "",
    `sessionbridge is serving the orders example on ${a.bridgeAddress} (gRPC), http://${a.httpAddress} (HTTP, Connect) and ${a.natsUrl} (NATS, subjects sb.<package.Service>.<Method>).`,
    `Behind it: orders in TypeScript over gRPC (${a.ordersAddress}), inventory in Python over HTTP (${a.inventoryAddress}), payments in Go over NATS (payments.<Method>).`,
    "",
    "Try one order across all three, from another terminal:",
    `  ${a.grpcurl} -plaintext -d '{"order_id":"A-1","customer":"ada"}' ${a.bridgeAddress} examples.orders.v1.Orders/Open`,
    `  ${a.grpcurl} -plaintext -d '{"order_id":"A-1","sku":"tea","qty":2}' ${a.bridgeAddress} examples.orders.v1.Orders/AddItem`,
    `  curl -s ${json} -d '{"orderId":"A-1","sku":"tea","qty":2}' http://${a.httpAddress}/examples.inventory.v1.Inventory/Reserve`,
    `  ${a.nats} -s ${a.natsUrl} req sb.examples.payments.v1.Payments.Charge '{"orderId":"A-1","amountCents":1250}' -H Content-Type:application/json`,
    `  ${a.grpcurl} -plaintext -d '{"order_id":"A-1"}' ${a.bridgeAddress} examples.orders.v1.Orders/Checkout`,
    `  node dist/cli/main.js sessions list --bridge ${a.bridgeAddress}     (one session per service, all correlated by order_id A-1)`,
    `  node dist/cli/main.js sessions history --bridge ${a.bridgeAddress} <SESSION_ID>`,
    "",
    "The README's walkthrough goes further (one-way messages, faults, restarts).",
    "Ctrl-C stops them all.",
    "",
  ].join("\n");
}
