import {
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  status,
} from "@grpc/grpc-js";
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

/**
 * The example process: an ordinary gRPC server for examples.orders.v1.Orders. It needs no
 * sessionbridge library: the session facts arrive as metadata (sb-session-id,
 * sb-message-id), and it keeps one order per session. Notes arrive one-way and may be
 * redelivered after a bridge restart, so it applies each message id once.
 */
export interface OrdersProcess {
  readonly port: number;
  /** Orders by session id, for tests and demos. */
  readonly orders: ReadonlyMap<string, Order>;
  /** Every delivery seen, in arrival order: operation, session and message ids. */
  readonly deliveries: readonly { operation: string; sessionId: string; messageId: string }[];
  close(): Promise<void>;
}

export async function startOrdersProcess(address = "127.0.0.1:0"): Promise<OrdersProcess> {
  const orders = new Map<string, Order>();
  const applied = new Set<string>();
  const deliveries: { operation: string; sessionId: string; messageId: string }[] = [];

  function facts(call: ServerUnaryCall<unknown, unknown>, operation: string) {
    const sessionId = String(call.metadata.get("sb-session-id")[0] ?? "");
    const messageId = String(call.metadata.get("sb-message-id")[0] ?? "");
    deliveries.push({ operation, sessionId, messageId });
    return { sessionId, messageId };
  }

  function orderOf(sessionId: string, orderId: string): Order {
    const order = orders.get(sessionId);
    if (order === undefined || order.orderId !== orderId) {
      throw Object.assign(new Error(`no open order ${orderId} in session ${sessionId}`), {
        code: status.NOT_FOUND,
      });
    }
    return order;
  }

  function handle<Req, Res>(
    operation: string,
    work: (req: Req, sessionId: string, messageId: string) => Res,
  ) {
    const handler: handleUnaryCall<Req, Res> = (call, callback) => {
      try {
        const { sessionId, messageId } = facts(call as ServerUnaryCall<unknown, unknown>, operation);
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
    open: handle<OpenOrder, Order>("Open", (req, sessionId) => {
      const order: Order = {
        orderId: req.orderId,
        customer: req.customer,
        items: [],
        notes: [],
        totalQty: 0,
      };
      orders.set(sessionId, order);
      return order;
    }),
    addItem: handle<AddItem, Order>("AddItem", (req, sessionId) => {
      const order = orderOf(sessionId, req.orderId);
      if (req.qty === 0) {
        throw Object.assign(new Error("qty must be at least 1"), { code: status.INVALID_ARGUMENT });
      }
      order.items.push({ sku: req.sku, qty: req.qty });
      order.totalQty += req.qty;
      return order;
    }),
    get: handle<GetOrder, Order>("Get", (req, sessionId) => orderOf(sessionId, req.orderId)),
    note: handle<OrderNote, Empty>("Note", (req, sessionId, messageId) => {
      // At-least-once delivery, exactly-once effect: a redelivered note keeps its id (S10).
      if (!applied.has(messageId)) {
        applied.add(messageId);
        orderOf(sessionId, req.orderId).notes.push(req.text);
      }
      return {};
    }),
    checkout: handle<CheckoutOrder, Receipt>("Checkout", (req, sessionId) => {
      const order = orderOf(sessionId, req.orderId);
      return {
        orderId: order.orderId,
        customer: order.customer,
        items: order.items,
        totalQty: order.totalQty,
        notes: order.notes,
      };
    }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    port,
    orders,
    deliveries,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
