"""Turns within a session: exclusive messages one at a time, in arrival order (S6).

A `Turns` is a first-in first-out readers-writer queue. A message takes a ticket when it
arrives (so arrival order is fixed even before its thread runs) and waits for its turn:
an exclusive ticket runs alone, shared tickets (Peek) run beside each other. Tickets are
granted strictly in queue order, so a shared message never overtakes an earlier
exclusive one.

A transport may take a ticket before it knows the call will reach the service at all
(gRPC takes it when the call arrives, before the request is read): such a provisional
ticket that is granted but not claimed within PROVISIONAL_GRACE_S is given up, so a call
that never ran cannot hold its session forever. A late claimant then queues again.
"""

import collections
import threading
import time

PROVISIONAL_GRACE_S = 2.0


class Ticket:
    __slots__ = ("shared", "granted", "provisional", "granted_at", "abandoned")

    def __init__(self, shared, provisional):
        self.shared = shared
        self.granted = False
        self.provisional = provisional
        self.granted_at = 0.0
        self.abandoned = False


class Turns:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._running = set()  # granted tickets
        self._writer = False

    def take(self, shared, provisional=False):
        with self._lock:
            ticket = Ticket(shared, provisional)
            self._queue.append(ticket)
            self._grant()
            return ticket

    def claim(self, ticket):
        """Makes a provisional ticket firm; False when it was already given up."""
        with self._lock:
            if ticket.abandoned:
                return False
            ticket.provisional = False
            return True

    def wait(self, ticket, call):
        """Waits for the ticket's turn; raises at the deadline or on cancel (the caller then
        gives the ticket back with release())."""
        call.wait_until(lambda: self._reap() or ticket.granted)

    def release(self, ticket):
        with self._lock:
            self._drop(ticket)
            self._grant()

    def idle(self):
        with self._lock:
            return not self._queue and not self._running

    def _drop(self, ticket):
        if ticket.abandoned:
            return
        ticket.abandoned = True
        if ticket.granted:
            self._running.discard(ticket)
            if not ticket.shared:
                self._writer = False
        else:
            self._queue.remove(ticket)

    def _reap(self):
        with self._lock:
            now = time.monotonic()
            stale = [t for t in self._running if t.provisional and now - t.granted_at > PROVISIONAL_GRACE_S]
            for ticket in stale:
                self._drop(ticket)
            if stale:
                self._grant()
        return False

    def _grant(self):
        while self._queue and not self._writer:
            head = self._queue[0]
            if not head.shared:
                if self._running:
                    return
                self._writer = True
            head.granted = True
            head.granted_at = time.monotonic()
            self._running.add(head)
            self._queue.popleft()
