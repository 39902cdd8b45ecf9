"""One server stream over NATS in the framing of docs/nats.md "Streaming".

The requester's reply subject receives `head` (with `sb-stream-control`, the subject of
this stream's acks and cancels), one `msg` per item numbered by `sb-stream-seq`, and one
`end` with the trailers or the fault headers (S14). At most `window` messages are sent
and not yet acknowledged: the worker thread producing items waits while the window is
full, so a slow reader slows the stream instead of growing a buffer. A window that stays
full for ACK_TIMEOUT_S gives the stream up (RESOURCE_EXHAUSTED). A cancel from the
requester cancels the call behind the stream (S15); its deadline is the call's.

The event loop owns the NATS connection; the worker thread hands each publish to it and
waits until it is written to the connection's buffer.
"""

import asyncio
import threading
import time

from google.rpc import code_pb2

from faults import LabFault, invalid_argument

DEFAULT_WINDOW = 64
MAX_WINDOW = 1024
# How long a full window waits for an ack before the stream is given up (docs/nats.md).
ACK_TIMEOUT_S = 30.0
# A publish only writes to the connection's buffer; longer means the loop is gone.
PUBLISH_TIMEOUT_S = 10.0
# Waits are sliced so a cancel or the deadline is seen promptly.
_WAIT_SLICE_S = 0.05


def requested_window(text):
    """sb-stream-window: 1 and up, clamped to MAX_WINDOW; DEFAULT_WINDOW when absent."""
    if text is None:
        return DEFAULT_WINDOW
    if not text.isdigit() or len(text) > 5 or int(text) < 1:
        raise invalid_argument("INVALID_REQUEST", f"sb-stream-window must be a positive integer, got {text[:16]!r}")
    return min(int(text), MAX_WINDOW)


class NatsStream:
    """The serving side of one stream; created and subscribed on the event loop, fed from a
    worker thread with send() and finished with end()."""

    def __init__(self, nc, loop, reply, window, call):
        self._nc = nc
        self._loop = loop
        self._reply = reply
        self._window = window
        self._call = call
        self._control = nc.new_inbox()
        self._subscription = None
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._given_up = None  # the LabFault that ended the stream from the reader's side
        self.sent = 0

    async def open(self, head_headers):
        """Subscribes to the control subject, then sends the head (on the event loop)."""
        self._subscription = await self._nc.subscribe(self._control, cb=self._on_control)
        headers = dict(head_headers)
        headers["sb-stream"] = "head"
        headers["sb-stream-control"] = self._control
        await self._nc.publish(self._reply, b"", headers=headers)

    def send(self, payload, headers=None):
        """One msg (from the worker thread); waits while the window is full. Raises the
        call's CANCELLED or DEADLINE_EXCEEDED, or RESOURCE_EXHAUSTED when no ack comes."""
        full_since = None
        with self._lock:
            while self._sent - self._acked >= self._window:
                self._raise_if_over()
                now = time.monotonic()
                full_since = full_since or now
                if now - full_since >= ACK_TIMEOUT_S:
                    self._given_up = LabFault(
                        code_pb2.RESOURCE_EXHAUSTED,
                        f"the requester acked nothing for {ACK_TIMEOUT_S:g} s with {self._window} messages unacked;"
                        " the stream is given up",
                        "STREAM_NOT_ACKED",
                        metadata={"window": str(self._window)},
                    )
                    # The call behind the stream stops too (its session turn is given back, S6).
                    self._call.cancel()
                    raise self._given_up
                self._lock.wait(_WAIT_SLICE_S)
            self._raise_if_over()
            self._sent += 1
            seq = self._sent
        out = dict(headers or {})
        out["sb-stream"] = "msg"
        out["sb-stream-seq"] = str(seq)
        self._publish(payload, out)
        self.sent = seq

    def end(self, headers):
        """The end (from any thread but the loop); idempotent through the loop's ordering."""
        out = dict(headers)
        out["sb-stream"] = "end"
        try:
            self._publish(b"", out)
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self._loop)
            except RuntimeError:  # the loop is closed: so is the subscription
                pass

    def fault(self):
        """The fault the requester caused (cancel, no acks), if any."""
        with self._lock:
            return self._given_up

    def _raise_if_over(self):
        if self._given_up is not None:
            raise self._given_up
        self._call.check()

    def _publish(self, payload, headers):
        publishing = self._nc.publish(self._reply, payload, headers=headers)
        asyncio.run_coroutine_threadsafe(publishing, self._loop).result(timeout=PUBLISH_TIMEOUT_S)

    async def _close(self):
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # the connection is closing: nothing is held any more
                pass

    async def _on_control(self, msg):
        headers = msg.headers or {}
        if "sb-stream-cancel" in headers:
            with self._lock:
                if self._given_up is None:
                    self._given_up = LabFault(code_pb2.CANCELLED, "the requester cancelled the stream", "CANCELLED")
                self._lock.notify_all()
            # Cuts short whatever the call waits for: its turn, a pause, the window (S15).
            self._call.cancel()
            return
        text = headers.get("sb-stream-ack", "")
        if not text.isdigit() or len(text) > 15:
            return
        with self._lock:
            # Acks only move forward and never past what was sent: a stray ack is harmless.
            acked = min(int(text), self._sent)
            if acked > self._acked:
                self._acked = acked
                self._lock.notify_all()
