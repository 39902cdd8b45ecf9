"""The lab services over NATS request-reply (nats-py), as docs/nats.md describes a process.

Each operation is served on `<prefix>.<package.Service>.<Method>`. The payload is binary
protobuf, or protobuf JSON with `Content-Type: application/json`; session facts are
headers, the deadline is `sb-timeout-ms` (S15). A fault is an empty reply with
`Nats-Service-Error-Code` (the HTTP number), `Nats-Service-Error` (the message on one
line), `sb-status-bin` (base64 google.rpc.Status: exact code, reason, details) and
`sb-reason` (S14). Reply headers and trailers both travel as reply headers: NATS has no
trailers. Server streams (LabService.Items) use the framing of docs/nats.md "Streaming"
(nats_stream.py): head, numbered msgs within the requester's window of acks, end.
"""

import asyncio
import base64
import sys
import threading
from concurrent import futures

import nats
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from call import Call
from faults import CONNECT_CODES, LabFault, invalid_argument
from lab_core import METHODS
from nats_stream import NatsStream, requested_window

MAX_WORKERS = 128


class NatsTransport:
    def __init__(self, core, url, prefix):
        self._core = core
        self._url = url
        self._prefix = prefix
        self._loop = asyncio.new_event_loop()
        self._pool = futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="lab-nats")
        self._tasks = set()
        self._streaming = set()  # calls of the streams being served, cancelled at stop
        self._nc = None
        # subject -> method, for every operation of every lab service.
        self._subjects = {f"{prefix}.{m.service.full_name}.{m.name}": m for m in METHODS.values()}

    def start(self):
        """Connects and subscribes; returns once every subject is served."""
        threading.Thread(target=self._loop.run_forever, name="lab-nats-loop", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result(timeout=30)
        return self._prefix

    def stop(self):
        # A stream waiting for acks would otherwise hold its worker thread until it times out.
        for call in list(self._streaming):
            call.cancel()
        if self._nc is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._nc.drain(), self._loop).result(timeout=5)
            except Exception as error:  # shutting down anyway
                print(f"nats drain: {error}", file=sys.stderr)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _connect(self):
        async def on_error(error):
            print(f"nats: {error}", file=sys.stderr)

        self._nc = await nats.connect(
            servers=[self._url], name="sb-lab-python", max_reconnect_attempts=-1, error_cb=on_error
        )
        for subject in self._subjects:
            await self._nc.subscribe(subject, cb=self._on_message)
        await self._nc.flush()

    async def _on_message(self, msg):
        # Runs on the event loop in arrival order: the session turn is taken here, before
        # the work goes to a thread, so a session's messages keep their order (S6).
        method = self._subjects[msg.subject]
        headers = dict(msg.headers or {})
        try:
            timeout_ms = _timeout(_header(headers, "sb-timeout-ms"))
        except LabFault as fault:
            return await self._reply(msg, b"", _fault_headers(fault))
        call = Call("nats", method.operation, list(headers.items()), timeout_ms)
        if method.server_streaming:
            return await self._open_stream(msg, method, call, headers)
        self._core.arrive(call)
        task = self._loop.create_task(self._answer(msg, method, call, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg, method, call, headers):
        try:
            payload, reply_headers = await self._loop.run_in_executor(
                self._pool, self._handle, method, call, headers, msg.data
            )
        except Exception as error:  # never leave the caller without an answer
            print(f"nats {msg.subject}: {error!r}", file=sys.stderr)
            payload, reply_headers = b"", _fault_headers(LabFault(13, f"internal error: {error}", "INTERNAL"))
        await self._reply(msg, payload, reply_headers)

    async def _open_stream(self, msg, method, call, headers):
        """Accepts a stream: its turn is taken here, in arrival order (S6), then the head goes
        out and a worker thread produces the items. A request refused before that (a bad
        window, a malformed message) is answered by an end alone."""
        json_codec = _is_json(headers)
        try:
            window = requested_window(_header(headers, "sb-stream-window"))
            request = _decode(method.request_class, json_codec, msg.data)
        except LabFault as fault:
            return await self._reply(msg, b"", {**_fault_headers(fault), "sb-stream": "end"})
        if not msg.reply:
            return  # nobody to stream to
        self._core.arrive(call)
        stream = NatsStream(self._nc, self._loop, msg.reply, window, call)
        try:
            facts = {"sb-session-id": call.session_id, "sb-message-id": call.message_id}
            content_type = "application/json" if json_codec else "application/proto"
            await stream.open({"Content-Type": content_type, **{k: v for k, v in facts.items() if v}})
        except Exception as error:  # the connection is gone: give the turn back
            print(f"nats stream head: {error!r}", file=sys.stderr)
            self._core.release(call)
            return
        self._streaming.add(call)
        future = self._loop.run_in_executor(self._pool, self._stream, stream, call, request, json_codec)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def _stream(self, stream, call, request, json_codec):
        """Runs on a worker thread: sends the items as the requester's window allows, then
        the end with the status (S14). The session turn is given back on every path."""
        fault = None
        items = self._core.items(call, request)
        try:
            for item in items:
                stream.send(_encode(item, json_codec))
        except LabFault as error:
            # A cancel or an unacked window explains the stop better than its echo in the call.
            fault = stream.fault() or error
        except Exception as error:
            print(f"nats stream: {error!r}", file=sys.stderr)
            fault = LabFault(13, f"internal error: {error}", "INTERNAL")
        finally:
            items.close()
            self._core.release(call)
            self._streaming.discard(call)
        try:
            stream.end(_fault_headers(fault) if fault is not None else {})
        except Exception as error:  # the connection is gone: nobody can be told
            print(f"nats stream end: {error!r}", file=sys.stderr)

    async def _reply(self, msg, payload, headers):
        if msg.reply:
            try:
                await self._nc.publish(msg.reply, payload, headers=headers)
            except Exception as error:  # the connection is gone: the caller times out
                print(f"nats reply: {error!r}", file=sys.stderr)

    def _handle(self, method, call, headers, data):
        """Runs on a worker thread: decode, apply, encode. Returns (payload, headers)."""
        json_codec = _is_json(headers)
        reply_headers = {}
        try:
            request = _decode(method.request_class, json_codec, data)
            instruction = request.instruction
            reply_headers.update(instruction.reply_headers)
            reply_headers.update(instruction.reply_trailers)
            response = self._core.unary(call, request)
        except LabFault as fault:
            reply_headers.update(_fault_headers(fault))
            return b"", reply_headers
        finally:
            self._core.release(call)
        if json_codec:
            reply_headers["Content-Type"] = "application/json"
        return _encode(response, json_codec), reply_headers


def _is_json(headers):
    return (_header(headers, "content-type") or "").split(";")[0].strip() == "application/json"


def _encode(message, json_codec):
    if json_codec:
        return json_format.MessageToJson(message, indent=None).encode("utf-8")
    return message.SerializeToString()


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _decode(message_class, json_codec, data):
    try:
        if json_codec:
            return json_format.Parse(data.decode("utf-8") or "{}", message_class(), ignore_unknown_fields=True)
        return message_class.FromString(data)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as error:
        raise invalid_argument("MALFORMED_MESSAGE", f"the request is not a {message_class.__name__}: {error}")


def _fault_headers(fault):
    one_line = " ".join(fault.message.splitlines()) or CONNECT_CODES[fault.code][0]
    headers = {
        "Nats-Service-Error-Code": str(CONNECT_CODES[fault.code][1]),
        "Nats-Service-Error": one_line,
        "sb-status-bin": base64.b64encode(fault.to_status().SerializeToString()).decode("ascii"),
    }
    if fault.reason:
        headers["sb-reason"] = fault.reason
    return headers


def _timeout(text):
    if text is None:
        return None
    if not text.isdigit() or len(text) > 10 or int(text) < 1:
        raise invalid_argument("INVALID_TIMEOUT", f"sb-timeout-ms must be a positive integer, got {text!r}")
    return int(text)
