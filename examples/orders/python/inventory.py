"""The inventory process of the orders example: examples.inventory.v1.Inventory over HTTP.

A plain Connect-protocol server on the standard library's http.server, knowing nothing of
sessionbridge: the bridge reaches it at http://HOST:PORT?codec=json and POSTs each call to
/examples.inventory.v1.Inventory/<Method> with a protobuf-JSON body and the session facts
as headers (sb-session-id, sb-message-id). It keeps the shelf and one reservation per
session in SQLite and applies each sb-message-id once: the message id is recorded in the
same transaction as the change, with the answer given, so a redelivered message gets that
answer again and changes nothing (S10: at-least-once delivery, exactly-once effect).

    python inventory.py --listen 127.0.0.1:50062 --db .sessionbridge/inventory.db

Prints one JSON line once it is listening.
"""

import argparse
import base64
import json
import os
import signal
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "/examples.inventory.v1.Inventory/"
# A reservation message is a few dozen bytes; anything far larger is refused unread.
MAX_REQUEST_BYTES = 64 * 1024
# What the shelf holds when the database is new.
INITIAL_STOCK = {"tea": 100, "jam": 40, "scone": 20, "honey": 10}

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
  session_id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL,
  committed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS lines (
  session_id TEXT NOT NULL,
  sku TEXT NOT NULL,
  qty INTEGER NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (session_id, sku)
);
CREATE TABLE IF NOT EXISTS processed_messages (
  message_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  operation TEXT NOT NULL,
  response TEXT NOT NULL
);
"""

# Connect error codes and their HTTP statuses (the one table, DESIGN section 3).
HTTP_STATUS = {
    "invalid_argument": 400,
    "not_found": 404,
    "failed_precondition": 400,
    "unimplemented": 501,
    "internal": 500,
    "resource_exhausted": 429,
}


class Fault(Exception):
    def __init__(self, code, message, reason="INVENTORY_FAULT"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    def body(self):
        """The Connect error body, with a google.rpc.ErrorInfo naming the reason (S14)."""
        info = field(1, self.reason.encode()) + field(2, b"inventory.example")
        value = base64.b64encode(info).decode().rstrip("=")
        detail = {"type": "google.rpc.ErrorInfo", "value": value}
        return {"code": self.code, "message": self.message, "details": [detail]}


def field(number, data):
    """A length-delimited protobuf field (wire type 2), for the two strings of ErrorInfo."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Inventory:
    """The shelf and the reservations, one SQLite connection behind one lock."""

    def __init__(self, path):
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        # FULL: an answered change survives a power loss, not only a crash.
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(SCHEMA)
        self.db.executemany(
            "INSERT OR IGNORE INTO stock (sku, qty) VALUES (?, ?)", INITIAL_STOCK.items()
        )
        self.lock = threading.Lock()

    def call(self, method, request, session_id, message_id):
        handlers = {
            "Reserve": self.reserve,
            "Release": self.release,
            "Get": self.get,
            "Commit": self.commit,
        }
        handler = handlers.get(method)
        if handler is None:
            raise Fault("unimplemented", f"no method {method}")
        order_id = text(request, "orderId", "order_id")
        with self.lock:
            if method == "Get":
                return self.get(session_id, order_id, request)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if message_id:
                    seen = self.db.execute(
                        "SELECT response FROM processed_messages WHERE message_id = ?",
                        (message_id,),
                    ).fetchone()
                    if seen is not None:
                        self.db.execute("ROLLBACK")
                        return json.loads(seen[0])
                answer = handler(session_id, order_id, request)
                if message_id:
                    self.db.execute(
                        "INSERT INTO processed_messages VALUES (?, ?, ?, ?)",
                        (message_id, session_id, method, json.dumps(answer)),
                    )
                self.db.execute("COMMIT")
                return answer
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def reserve(self, session_id, order_id, request):
        sku, qty = text(request, "sku"), number(request, "qty")
        if qty < 1:
            raise Fault("invalid_argument", "qty must be at least 1")
        row = self.db.execute("SELECT qty FROM stock WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            raise Fault("not_found", f"no sku {sku!r} on the shelf")
        if row[0] < qty:
            raise Fault(
                "failed_precondition", f"only {row[0]} {sku} left, {qty} asked", "OUT_OF_STOCK"
            )
        existing = self.reservation_row(session_id)
        if existing is None:
            self.db.execute(
                "INSERT INTO reservations (session_id, order_id) VALUES (?, ?)",
                (session_id, order_id),
            )
        elif existing[0] != order_id:
            raise Fault("not_found", f"no reservation for order {order_id} in this session")
        elif existing[1]:
            raise Fault("failed_precondition", f"order {order_id} is already committed")
        self.db.execute("UPDATE stock SET qty = qty - ? WHERE sku = ?", (qty, sku))
        self.db.execute(
            """INSERT INTO lines (session_id, sku, qty, position)
               VALUES (?, ?, ?, (SELECT COUNT(*) FROM lines WHERE session_id = ?))
               ON CONFLICT (session_id, sku) DO UPDATE SET qty = qty + excluded.qty""",
            (session_id, sku, qty, session_id),
        )
        return self.view(session_id)

    def release(self, session_id, order_id, request):
        self.require(session_id, order_id)
        sku, qty = text(request, "sku"), number(request, "qty")
        line = self.db.execute(
            "SELECT qty FROM lines WHERE session_id = ? AND sku = ?", (session_id, sku)
        ).fetchone()
        if line is None:
            raise Fault("not_found", f"no {sku} reserved for order {order_id}")
        back = min(qty, line[0])
        self.db.execute("UPDATE stock SET qty = qty + ? WHERE sku = ?", (back, sku))
        self.db.execute(
            "UPDATE lines SET qty = qty - ? WHERE session_id = ? AND sku = ?",
            (back, session_id, sku),
        )
        return {}  # google.protobuf.Empty

    def get(self, session_id, order_id, _request):
        self.require(session_id, order_id)
        return self.view(session_id)

    def commit(self, session_id, order_id, _request):
        self.require(session_id, order_id)
        self.db.execute(
            "UPDATE reservations SET committed = 1 WHERE session_id = ?", (session_id,)
        )
        return self.view(session_id)

    def reservation_row(self, session_id):
        return self.db.execute(
            "SELECT order_id, committed FROM reservations WHERE session_id = ?",
            (session_id,),
        ).fetchone()

    def require(self, session_id, order_id):
        row = self.reservation_row(session_id)
        if row is None or row[0] != order_id:
            raise Fault("not_found", f"no reservation for order {order_id} in this session")

    def view(self, session_id):
        """The reservation in the proto3 JSON mapping: zero values are left out."""
        order_id, committed = self.reservation_row(session_id)
        lines = []
        for sku, qty, in_stock in self.db.execute(
            """SELECT l.sku, l.qty, s.qty FROM lines l JOIN stock s ON s.sku = l.sku
               WHERE l.session_id = ? ORDER BY l.position""",
            (session_id,),
        ):
            line = {"sku": sku}
            if qty:
                line["qty"] = qty
            if in_stock:
                line["inStock"] = in_stock
            lines.append(line)
        out = {"orderId": order_id}
        if lines:
            out["lines"] = lines
        if committed:
            out["committed"] = True
        return out


def text(request, *names):
    for name in names:
        value = request.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise Fault("invalid_argument", f"{name} must be a string")
            return value
    return ""


def number(request, name):
    value = request.get(name, 0)
    # proto3 JSON allows uint32 as a number or a decimal string.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Fault("invalid_argument", f"{name} must be a non-negative integer")
    return value


def make_handler(inventory):
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive: the bridge reuses its connections.
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            try:
                answer = self.serve()
                self.send(200, answer)
            except Fault as fault:
                self.send(HTTP_STATUS[fault.code], fault.body())
            except Exception as error:  # the caller gets a Connect error, never a reset
                self.send(500, {"code": "internal", "message": str(error)})

        def serve(self):
            if not self.path.startswith(SERVICE):
                raise Fault("unimplemented", f"no service at {self.path}")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/json":
                raise Fault("invalid_argument", "send protobuf JSON: http://HOST:PORT?codec=json")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                # Never read to the end of a kept-alive connection: it would never come.
                self.close_connection = True
                raise Fault("invalid_argument", "Content-Length must be a byte count")
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                raise Fault("resource_exhausted", f"request over {MAX_REQUEST_BYTES} bytes")
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as error:
                raise Fault("invalid_argument", f"malformed JSON: {error}") from None
            if not isinstance(request, dict):
                raise Fault("invalid_argument", "the request must be a JSON object")
            return inventory.call(
                self.path[len(SERVICE):],
                request,
                self.headers.get("sb-session-id") or "",
                self.headers.get("sb-message-id") or "",
            )

        def send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):
            pass  # quiet: the bridge journals every call

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:50062", help="host:port; port 0 picks one")
    parser.add_argument("--db", default=".sessionbridge/inventory.db", help="the SQLite file")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    inventory = Inventory(args.db)
    server = ThreadingHTTPServer((host, int(port)), make_handler(inventory))
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        json.dumps(
            {
                "msg": "inventory process ready",
                "port": server.server_address[1],
                "pid": os.getpid(),
                "databaseFile": args.db,
            }
        ),
        flush=True,
    )
    server.serve_forever()
    server.server_close()
    inventory.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
