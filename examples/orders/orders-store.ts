import { mkdirSync } from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import {
  type AddItem,
  type CheckoutOrder,
  type OpenOrder,
  Order,
  type OrderNote,
  Receipt,
} from "../../sdk/gen/examples/orders/v1/orders.js";
import { Empty } from "../../sdk/gen/google/protobuf/empty.js";

/**
 * The orders, kept in SQLite by session id so they outlive a restart of the process (the
 * bridge keeps the sessions; the process keeps what the sessions are about).
 *
 * Every change is applied at most once per `sb-message-id`: the bridge delivers at least
 * once (a one-way note that was applied but not yet recorded as delivered when the bridge
 * crashed goes out again with its original id, S10), so the message id is recorded in
 * the same transaction as the change it caused, together with the answer given. A
 * redelivery then gets that answer again and changes nothing.
 */
export interface OrdersStore {
  open(sessionId: string, messageId: string, request: OpenOrder): Order;
  addItem(sessionId: string, messageId: string, request: AddItem): Order;
  note(sessionId: string, messageId: string, request: OrderNote): Empty;
  checkout(sessionId: string, messageId: string, request: CheckoutOrder): Receipt;
  /** The session's order; NOT_FOUND unless it holds `orderId`. */
  get(sessionId: string, orderId: string): Order;
  /** The session's order, if any. */
  find(sessionId: string): Order | undefined;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS orders (
  session_id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL,
  customer TEXT NOT NULL,
  total_qty INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
  session_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  sku TEXT NOT NULL,
  qty INTEGER NOT NULL,
  PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS order_notes (
  session_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS processed_messages (
  message_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  operation TEXT NOT NULL,
  response BLOB NOT NULL
);
`;

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

interface OrderRow {
  order_id: string;
  customer: string;
  total_qty: number;
}

function notFound(message: string): Error {
  return Object.assign(new Error(message), { code: status.NOT_FOUND });
}

export function openOrdersStore(file: string): OrdersStore {
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // FULL: a change the process has answered survives even a power loss.
  db.pragma("synchronous = FULL");
  db.exec(SCHEMA);

  const selectOrder = db.prepare<[string], OrderRow>(
    "SELECT order_id, customer, total_qty FROM orders WHERE session_id = ?",
  );
  const selectItems = db.prepare<[string], { sku: string; qty: number }>(
    "SELECT sku, qty FROM order_items WHERE session_id = ? ORDER BY position",
  );
  const selectNotes = db.prepare<[string], { text: string }>(
    "SELECT text FROM order_notes WHERE session_id = ? ORDER BY position",
  );
  const insertOrder = db.prepare(
    "INSERT INTO orders (session_id, order_id, customer, total_qty) VALUES (?, ?, ?, 0)",
  );
  const insertItem = db.prepare(
    `INSERT INTO order_items (session_id, position, sku, qty)
     VALUES (?, (SELECT COUNT(*) FROM order_items WHERE session_id = ?), ?, ?)`,
  );
  const addQty = db.prepare("UPDATE orders SET total_qty = total_qty + ? WHERE session_id = ?");
  const insertNote = db.prepare(
    `INSERT INTO order_notes (session_id, position, text)
     VALUES (?, (SELECT COUNT(*) FROM order_notes WHERE session_id = ?), ?)`,
  );
  const selectProcessed = db.prepare<[string], { response: Buffer }>(
    "SELECT response FROM processed_messages WHERE message_id = ?",
  );
  const insertProcessed = db.prepare(
    "INSERT INTO processed_messages (message_id, session_id, operation, response) VALUES (?, ?, ?, ?)",
  );

  function find(sessionId: string): Order | undefined {
    const row = selectOrder.get(sessionId);
    if (row === undefined) return undefined;
    return {
      orderId: row.order_id,
      customer: row.customer,
      items: selectItems.all(sessionId),
      notes: selectNotes.all(sessionId).map((n) => n.text),
      totalQty: row.total_qty,
    };
  }

  function get(sessionId: string, orderId: string): Order {
    const order = find(sessionId);
    if (order === undefined || order.orderId !== orderId) {
      throw notFound(`no open order ${orderId} in session ${sessionId}`);
    }
    return order;
  }

  const transaction = db.transaction((work: () => unknown) => work());

  /**
   * Runs `change` once per message id: the change and the record of its message commit
   * together, so a crash leaves either both or neither. Calls without a message id (not
   * through a bridge) are simply applied.
   */
  function once<T>(
    operation: string,
    sessionId: string,
    messageId: string,
    codec: Codec<T>,
    change: () => T,
  ): T {
    return transaction(() => {
      if (messageId !== "") {
        const seen = selectProcessed.get(messageId);
        if (seen !== undefined) return codec.decode(seen.response);
      }
      const answer = change();
      if (messageId !== "") {
        insertProcessed.run(messageId, sessionId, operation, Buffer.from(codec.encode(answer).finish()));
      }
      return answer;
    }) as T;
  }

  return {
    open: (sessionId, messageId, request) =>
      once("Open", sessionId, messageId, Order, () => {
        // Open on a live session joins it (S3): the order stays as it is.
        const existing = find(sessionId);
        if (existing !== undefined) return existing;
        insertOrder.run(sessionId, request.orderId, request.customer);
        return get(sessionId, request.orderId);
      }),
    addItem: (sessionId, messageId, request) =>
      once("AddItem", sessionId, messageId, Order, () => {
        get(sessionId, request.orderId);
        if (request.qty === 0) {
          throw Object.assign(new Error("qty must be at least 1"), { code: status.INVALID_ARGUMENT });
        }
        insertItem.run(sessionId, sessionId, request.sku, request.qty);
        addQty.run(request.qty, sessionId);
        return get(sessionId, request.orderId);
      }),
    note: (sessionId, messageId, request) =>
      once("Note", sessionId, messageId, Empty, () => {
        get(sessionId, request.orderId);
        insertNote.run(sessionId, sessionId, request.text);
        return {};
      }),
    checkout: (sessionId, messageId, request) =>
      once("Checkout", sessionId, messageId, Receipt, () => {
        const order = get(sessionId, request.orderId);
        return {
          orderId: order.orderId,
          customer: order.customer,
          items: order.items,
          totalQty: order.totalQty,
          notes: order.notes,
        };
      }),
    get,
    find,
    close: () => db.close(),
  };
}
