"""Turns within a session: exclusive messages one at a time, in arrival order (S6).

A `Turns` is a first-in first-out readers-writer queue. A message takes a ticket when it
arrives (so arrival order is fixed even before its thread runs) and waits for its turn:
an exclusive ticket runs alone, shared tickets (Peek) run beside each other. Tickets are
granted strictly in queue order, so a shared message never overtakes an earlier
exclusive one.
"""

import collections
import threading


class Ticket:
    __slots__ = ("shared", "granted")

    def __init__(self, shared):
        self.shared = shared
        self.granted = False


class Turns:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._readers = 0
        self._writer = False

    def take(self, shared):
        with self._lock:
            ticket = Ticket(shared)
            self._queue.append(ticket)
            self._grant()
            return ticket

    def wait(self, ticket, call):
        """Waits for the ticket's turn; raises at the deadline or on cancel (the caller then
        gives the ticket back with release())."""
        call.wait_until(lambda: ticket.granted)

    def release(self, ticket):
        with self._lock:
            if ticket.granted:
                if ticket.shared:
                    self._readers -= 1
                else:
                    self._writer = False
                ticket.granted = False
            else:
                self._queue.remove(ticket)
            self._grant()

    def idle(self):
        with self._lock:
            return not self._queue and self._readers == 0 and not self._writer

    def _grant(self):
        while self._queue and not self._writer:
            head = self._queue[0]
            if head.shared:
                self._readers += 1
            elif self._readers == 0:
                self._writer = True
            else:
                return
            head.granted = True
            self._queue.popleft()
