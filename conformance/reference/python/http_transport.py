"""The lab services over HTTP with the Connect protocol, on the standard library.

Unary: `POST /<package.Service>/<Method>` with `application/proto` or `application/json`;
the answer uses the same codec, reply trailers travel as `Trailer-` headers. Server
streaming: `application/connect+proto` or `+json`, enveloped messages and an end-of-stream
message carrying the trailers or the error. Faults are Connect error JSON
(`{code, message, details: [{type, value}]}`) with the HTTP status of DESIGN §3 (S14).
The deadline is `Connect-Timeout-Ms` (S15).
"""

import base64
import gzip
import io
import json
import select
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from call import Call
from faults import CONNECT_CODES, LabFault, invalid_argument
from lab_core import METHODS

# Requests larger than this are refused before anything is read (bounded memory).
MAX_REQUEST_BYTES = 64 << 20
UNARY_TYPES = {"application/proto": "proto", "application/json": "json"}
STREAM_TYPES = {"application/connect+proto": "proto", "application/connect+json": "json"}
END_STREAM = 0x02


def _decode(message_class, codec, data):
    try:
        if codec == "json":
            return json_format.Parse(data.decode("utf-8") or "{}", message_class(), ignore_unknown_fields=True)
        return message_class.FromString(data)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as error:
        raise invalid_argument("MALFORMED_MESSAGE", f"the request is not a {message_class.__name__}: {error}")


def _encode(message, codec):
    if codec == "json":
        return json_format.MessageToJson(message, indent=None).encode("utf-8")
    return message.SerializeToString()


def _error_json(fault):
    """The Connect error form: every detail of the google.rpc.Status, ErrorInfo first."""
    body = {"code": CONNECT_CODES[fault.code][0], "message": fault.message}
    details = fault.to_status().details
    if details:
        body["details"] = [
            {"type": d.type_url.rsplit("/", 1)[-1], "value": base64.b64encode(d.value).decode().rstrip("=")}
            for d in details
        ]
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    core = None  # set by serve_http

    def log_message(self, format, *args):  # quiet: the runner reads stderr only on failure
        pass

    def do_GET(self):
        self._plain(405, b"only POST is served")

    def do_POST(self):
        method = METHODS.get(self.path.split("?", 1)[0].lstrip("/"))
        call = None
        if method is not None and not method.server_streaming:
            # The session turn is taken as soon as the headers are read, before the body:
            # pipelined messages of a session keep their arrival order (S6).
            try:
                timeout_ms = _timeout(self.headers.get("Connect-Timeout-Ms"))
            except LabFault:
                timeout_ms = None  # answered below
            call = Call("http", method.operation, self.headers.items(), timeout_ms)
            self.core.arrive(call)
        try:
            self._post(method, call)
        finally:
            if call is not None:
                self.core.release(call)

    def _post(self, method, call):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self._plain(413 if length and length.isdigit() else 411, b"a bounded Content-Length is required")
        body = self.rfile.read(int(length))
        if method is None:
            return self._unary_error(LabFault(12, f"no method {self.path}", "UNKNOWN_OPERATION"), {}, "json")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        types = STREAM_TYPES if method.server_streaming else UNARY_TYPES
        if content_type not in types:
            return self._plain(415, b"unsupported content type")
        codec = types[content_type]
        try:
            timeout_ms = _timeout(self.headers.get("Connect-Timeout-Ms"))
            if method.server_streaming:
                return self._stream(method, codec, body, timeout_ms)
            if (self.headers.get("Content-Encoding") or "identity").lower() == "gzip":
                body = _gunzip(body)
            request = _decode(method.request_class, codec, body)
        except LabFault as fault:
            return self._unary_error(fault, {}, codec)
        self._unary(call, codec, request)

    def _unary(self, call, codec, request):
        instruction = request.instruction
        headers = dict(instruction.reply_headers)
        # Connect unary: trailers are headers with the `Trailer-` prefix (lab.proto, S15).
        headers.update({f"trailer-{k}": v for k, v in instruction.reply_trailers.items()})
        try:
            with _Watch(self.connection, call):
                response = self.core.unary(call, request)
        except LabFault as fault:
            return self._unary_error(fault, headers, codec)
        body = _encode(response, codec)
        self.send_response(200)
        self.send_header("Content-Type", f"application/{codec}")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _unary_error(self, fault, headers, codec):
        body = json.dumps(_error_json(fault)).encode("utf-8")
        self.send_response(CONNECT_CODES[fault.code][1])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, method, codec, body, timeout_ms):
        if len(body) < 5 or struct.unpack(">I", body[1:5])[0] != len(body) - 5:
            raise invalid_argument("MALFORMED_MESSAGE", "a streaming request is one enveloped message")
        data = body[5:]
        if body[0] & 0x01:
            data = _gunzip(data)
        request = _decode(method.request_class, codec, data)
        call = Call("http", method.operation, self.headers.items(), timeout_ms)
        self.send_response(200)
        self.send_header("Content-Type", f"application/connect+{codec}")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        end = {}
        try:
            for item in self.core.items(call, request):
                self._chunk(_envelope(0, _encode(item, codec)))
        except LabFault as fault:
            end["error"] = _error_json(fault)
        except OSError:
            # The client went away: the stream's work stops here (S15).
            call.cancel()
            self.close_connection = True
            return
        try:
            self._chunk(_envelope(END_STREAM, json.dumps(end).encode("utf-8")))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            call.cancel()
            self.close_connection = True

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _plain(self, status, text):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


def _envelope(flags, data):
    return struct.pack(">BI", flags, len(data)) + data


def _gunzip(data):
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(MAX_REQUEST_BYTES + 1)
    except (OSError, EOFError) as error:
        raise invalid_argument("MALFORMED_MESSAGE", f"bad gzip body: {error}")
    if len(out) > MAX_REQUEST_BYTES:
        raise LabFault(8, "the request is too large once decompressed", "MESSAGE_TOO_LARGE")
    return out


def _timeout(text):
    if text is None:
        return None
    if not text.isdigit() or len(text) > 10:
        raise invalid_argument("INVALID_TIMEOUT", f"Connect-Timeout-Ms must be 1-10 digits, got {text!r}")
    return int(text)


class _Watch:
    """Watches the connection while a call works: a client that closes it has cancelled the
    call, which is then abandoned like one past its deadline (S15)."""

    def __init__(self, connection, call):
        self._connection = connection
        self._call = call
        self._done = threading.Event()

    def __enter__(self):
        threading.Thread(target=self._run, name="lab-http-watch", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False

    def _run(self):
        while not self._done.is_set():
            try:
                readable, _, _ = select.select([self._connection], [], [], 0.05)
                if not readable:
                    continue
                if self._connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    self._call.cancel()
                # Bytes of a next request: the client is still there; stop watching.
                return
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                self._call.cancel()
                return


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve_http(core):
    """Starts the Connect server on 127.0.0.1, port 0; returns (server, 'http://host:port')."""
    handler = type("LabHandler", (_Handler,), {"core": core})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="lab-http", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
