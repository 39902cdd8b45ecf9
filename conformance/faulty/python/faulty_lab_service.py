"""Faulty Python lab services: the reference with exactly one rule broken, deterministically.

Run: .tools/conformance/python/venv/bin/python conformance/faulty/python/faulty_lab_service.py --break NAME

Each break overrides one decision method of the reference's LabCore
(conformance/reference/python/lab_core.py) and nothing else, so the conformance suite
must blame that rule and no other:

  accept-unknown    [S4]  a message for an id with no session creates one instead of
                          answering NOT_FOUND / CORRELATION_ERROR
  never-expire      [S12] idle sessions never expire
  ignore-deadlines  [S15] sleep_ms runs to its end and the message is applied even when
                          the deadline passed
  post-not-durable  [S9, S10] a one-way Post is acknowledged before its effect is on
                          disk, and reading the session (Peek) does not write it either:
                          a kill -9 before the next message that changes a log loses it
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.normpath(os.path.join(HERE, "..", "..", "reference", "python"))
sys.path.insert(0, REFERENCE)

import lab_service  # noqa: E402  (puts the generated code on sys.path)
from lab_core import LabCore  # noqa: E402


class AcceptUnknown(LabCore):
    def unknown_session_fault(self, call):
        # Broken S4: no fault, so the core goes on and creates the session.
        return None


class NeverExpire(LabCore):
    def idle_expired(self, service, session, at_ms):
        # Broken S12: no session ever expires.
        return False


class IgnoreDeadlines(LabCore):
    def pause(self, call, ms):
        # Broken S15: sleeps the whole time, whatever the deadline.
        time.sleep(ms / 1000.0)

    def finish_waiting(self, call):
        # Broken S15: applies even when the deadline has passed.
        pass


class PostNotDurable(LabCore):
    def durable(self, call, method):
        # Broken S9/S10: a Post's transaction is left uncommitted when it is answered, and
        # so are those of reads; the next Open/Act/Finish commits it, a kill -9 before
        # that loses it.
        return not (method.one_way or method.shared)


BREAKS = {
    "accept-unknown": AcceptUnknown,
    "never-expire": NeverExpire,
    "ignore-deadlines": IgnoreDeadlines,
    "post-not-durable": PostNotDurable,
}


def main():
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--break" or args[1] not in BREAKS:
        raise SystemExit(f"usage: faulty_lab_service.py --break {{{','.join(BREAKS)}}}")
    lab_service.main(BREAKS[args[1]])


if __name__ == "__main__":
    main()
