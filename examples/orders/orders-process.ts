import { type handleUnaryCall, Metadata, Server, ServerCredentials } from "@grpc/grpc-js";
import {
  type AddItem,
  type CheckoutOrder,
  type GetOrder,
  type OpenOrder,
  type Order,
  type OrderNote,
  OrdersService,
  type Receipt,
} from "../../sdk/gen/examples/orders/v1/orders.js";
import type { Empty } from "../../sdk/gen/google/protobuf/empty.js";
import { openOrdersStore } from "./orders-store.js";

/**
 * The example process: an ordinary gRPC server for examples.orders.v1.Orders. It needs no
 * sessionbridge library: the session facts arrive as metadata (sb-session-id,
 * sb-message-id). It keeps one order per session in SQLite (orders-store.ts), so orders
 * outlive a restart, and applies each message id once, so a redelivered message changes
 * nothing (S10: at-least-once delivery, exactly-once effect).
 */
export interface OrdersProcess {
  readonly port: number;
  /** The session's order, for tests and demos. */
  order(sessionId: string): Order | undefined;
  /** Every delivery this process has seen, in arrival order: operation, session and message ids. */
  readonly deliveries: readonly { operation: string; sessionId: string; messageId: string }[];
  close(): Promise<void>;
}

export interface OrdersProcessOptions {
  /** host:port; port 0 picks a free one. */
  readonly address?: string;
  /** The SQLite file holding the orders (created with its directory if missing). */
  readonly databaseFile: string;
}

export async function startOrdersProcess(options: OrdersProcessOptions): Promise<OrdersProcess> {
  const store = openOrdersStore(options.databaseFile);
  const deliveries: { operation: string; sessionId: string; messageId: string }[] = [];

  function handle<Req, Res>(
    operation: string,
    work: (req: Req, sessionId: string, messageId: string) => Res,
  ) {
    const handler: handleUnaryCall<Req, Res> = (call, callback) => {
      try {
        const sessionId = String(call.metadata.get("sb-session-id")[0] ?? "");
        const messageId = String(call.metadata.get("sb-message-id")[0] ?? "");
        deliveries.push({ operation, sessionId, messageId });
        const echo = new Metadata();
        echo.set("x-order-session", sessionId);
        call.sendMetadata(echo);
        callback(null, work(call.request, sessionId, messageId));
      } catch (error) {
        callback(error as Error);
      }
    };
    return handler;
  }

  const server = new Server();
  server.addService(OrdersService, {
    open: handle<OpenOrder, Order>("Open", (req, sessionId, messageId) =>
      store.open(sessionId, messageId, req),
    ),
    addItem: handle<AddItem, Order>("AddItem", (req, sessionId, messageId) =>
      store.addItem(sessionId, messageId, req),
    ),
    get: handle<GetOrder, Order>("Get", (req, sessionId) => store.get(sessionId, req.orderId)),
    note: handle<OrderNote, Empty>("Note", (req, sessionId, messageId) =>
      store.note(sessionId, messageId, req),
    ),
    checkout: handle<CheckoutOrder, Receipt>("Checkout", (req, sessionId, messageId) =>
      store.checkout(sessionId, messageId, req),
    ),
  });
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        options.address ?? "127.0.0.1:0",
        ServerCredentials.createInsecure(),
        (error, bound) => (error === null ? resolve(bound) : reject(error)),
      ),
    );
  } catch (error) {
    store.close();
    throw error;
  }
  return {
    port,
    order: (sessionId) => store.find(sessionId),
    deliveries,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          store.close();
          resolve();
        });
      }),
  };
}
