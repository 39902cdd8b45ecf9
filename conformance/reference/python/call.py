"""What one call brings, whatever transport it came on: session facts, deadline, metadata.

Transports build a `Call` from their headers; the core reads only this. Waiting is done
here so that every wait (for the session's turn, `sleep_ms`, stream intervals) is cut
short by the deadline or a cancel (S15).
"""

import base64
import threading
import time

from faults import cancelled, deadline_exceeded, invalid_argument

# Headers that belong to the transport, not to the caller (lab.proto, Observed.metadata).
TRANSPORT_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "accept",
        "accept-encoding",
        "accept-language",
        "te",
        "user-agent",
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "traceparent",
        "sec-fetch-mode",
    }
)
TRANSPORT_PREFIXES = (":", "grpc-", "connect-", "sb-", "nats-")

# Waits are sliced so a cancel arriving from another thread is seen promptly.
_WAIT_SLICE_S = 0.05


def custom_metadata(pairs):
    """Observed.metadata from (name, value) pairs: lower-cased names, transport headers and
    session facts left out, `-bin` values as standard padded base64 (S15)."""
    out = {}
    for name, value in pairs:
        name = name.lower()
        if name in TRANSPORT_HEADERS or name.startswith(TRANSPORT_PREFIXES):
            continue
        if name.endswith("-bin"):
            if isinstance(value, str):
                # HTTP and NATS carry binary headers as base64, padded or not.
                value = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_")
            value = base64.b64encode(value).decode("ascii")
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        # Repeated headers are joined as HTTP joins them.
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class Call:
    """One call as the service saw it arrive."""

    def __init__(self, transport, operation, headers, timeout_ms=None):
        """headers: (name, value) pairs; timeout_ms: the remaining time the caller sent, or None."""
        self.transport = transport
        self.operation = operation  # e.g. sessionbridge.conformance.v1.LabService/Act
        self.service, self.method = operation.split("/")
        facts = {}
        for name, value in headers:
            if isinstance(value, str):
                facts.setdefault(name.lower(), value)
        self.session_id = facts.get("sb-session-id", "")
        self.message_id = facts.get("sb-message-id", "")
        self.principal = facts.get("sb-principal", "")
        self.traceparent = facts.get("traceparent", "")
        self.metadata = custom_metadata(headers)
        # A malformed sb-seq is answered by the core, like any other fault.
        self.seq, self.seq_fault = _parse_seq(facts.get("sb-seq"))
        self.received = time.monotonic()
        self.set_timeout(timeout_ms)
        self.ticket = None  # the session turn taken at arrival (lab_core.LabCore.arrive)
        self.delivery_count = 0
        self._cancelled = threading.Event()

    def set_timeout(self, timeout_ms):
        """The remaining time the caller sent (None: no deadline), counted from now."""
        self.deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        self.remaining_at_receipt_ms = -1 if timeout_ms is None else int(timeout_ms)

    def cancel(self):
        """Called by the transport when the caller went away."""
        self._cancelled.set()

    @property
    def cancelled(self):
        return self._cancelled.is_set()

    def remaining_ms(self):
        """Time left until the deadline, -1 without one (Observed.deadline_remaining_ms)."""
        if self.deadline is None:
            return -1
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def deadline_passed(self):
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self):
        """Raises DEADLINE_EXCEEDED or CANCELLED when the call is over (S15)."""
        if self.deadline_passed():
            raise deadline_exceeded()
        if self.cancelled:
            raise cancelled()

    def sleep(self, ms):
        """Sleeps ms, abandoned by raising at the deadline or on cancel (S15)."""
        end = time.monotonic() + ms / 1000.0
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.deadline is not None:
                left = min(left, self.deadline - time.monotonic())
            self._cancelled.wait(max(0.0, min(left, _WAIT_SLICE_S)))

    def wait_until(self, predicate):
        """Waits until predicate() is true; raises at the deadline or on cancel."""
        while not predicate():
            self.check()
            self._cancelled.wait(_WAIT_SLICE_S)


def _parse_seq(text):
    if text is None or text == "":
        return None, None
    if not text.isdigit() or len(text) > 19 or int(text) < 1:
        return None, invalid_argument("INVALID_SEQ", f"sb-seq must be a positive integer, got {text!r}")
    return int(text), None

