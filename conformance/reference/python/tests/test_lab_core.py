"""Unit tests of the session rules in lab_core.py, below any transport.

Run: .tools/conformance/python/venv/bin/python -m unittest discover -s conformance/reference/python/tests
(test/conformance-python/python-unit.spec.ts runs them in `npm test`).
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.dirname(HERE)
ROOT = os.path.normpath(os.path.join(REFERENCE, "..", "..", ".."))
sys.path[:0] = [os.path.join(ROOT, ".tools", "conformance", "python", "gen"), REFERENCE]
sys.path.insert(0, os.path.join(ROOT, "conformance", "faulty", "python"))

from google.protobuf import any_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from sessionbridge.conformance.v1 import lab_pb2  # noqa: E402

import faulty_lab_service  # noqa: E402
from call import Call  # noqa: E402
from faults import LabFault  # noqa: E402
from lab_core import LabCore, sweep_period_s  # noqa: E402
from lab_store import LabStore  # noqa: E402

LAB = "sessionbridge.conformance.v1.LabService"
SEQUENTIAL = "sessionbridge.conformance.v1.SequentialLabService"
SINGLE = "sessionbridge.conformance.v1.SingleLabService"
PING = "sessionbridge.conformance.v1.PingLabService"


def act(*append, **fields):
    return lab_pb2.ActRequest(instruction=lab_pb2.Instruction(append=list(append), **fields))


def open_(*append, service_request=lab_pb2.OpenRequest, **fields):
    return service_request(tenant="t", account="a", instruction=lab_pb2.Instruction(append=list(append), **fields))


class Lab:
    """A core on a fresh state directory; reopen() simulates a restart on the same one."""

    def __init__(self, core_class=LabCore, time_scale=1.0):
        self.dir = tempfile.mkdtemp(prefix="lab-test-")
        self.core_class = core_class
        self.time_scale = time_scale
        self.core = core_class(LabStore(self.dir), time_scale)

    def reopen(self, abandon=False):
        """A restart. abandon=True loses what was not committed, as a kill -9 does (the
        mocha spec kills real processes; this is the same effect in-process)."""
        self.core.close()
        if abandon and self.core.store._db.in_transaction:
            self.core.store._db.execute("ROLLBACK")
        self.core.store.close()
        self.core = self.core_class(LabStore(self.dir), self.time_scale)

    def call(self, method, request, session="s1", service=LAB, timeout_ms=None, **headers):
        pairs = [("sb-session-id", session)] if session else []
        pairs += [(k.replace("_", "-"), v) for k, v in headers.items()]
        return self.core.unary(Call("grpc", f"{service}/{method}", pairs, timeout_ms), request)

    def fault(self, method, request, **kwargs):
        try:
            self.call(method, request, **kwargs)
        except LabFault as fault:
            return fault
        raise AssertionError(f"{method} did not fail")

    def close(self):
        self.core.close()
        try:
            self.core.store.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class ReferenceTest(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()

    def tearDown(self):
        self.lab.close()

    def test_state_is_per_session_and_open_joins_a_live_session(self):
        self.lab.call("Open", open_("a"), session="s1")
        self.lab.call("Open", open_("x"), session="s2")
        self.assertEqual(list(self.lab.call("Act", act("b"), session="s1").log), ["a", "b"])
        self.assertEqual(list(self.lab.call("Open", open_("c"), session="s1").log), ["a", "b", "c"])
        self.assertEqual(list(self.lab.call("Peek", act(), session="s2").log), ["x"])

    def test_unknown_finished_and_expired_sessions_are_not_found(self):
        fault = self.lab.fault("Act", act("z"), session="nobody")
        self.assertEqual((fault.code, fault.reason), (5, "CORRELATION_ERROR"))
        self.lab.call("Open", open_(), session="s1")
        self.assertEqual(list(self.lab.call("Finish", act("end")).log), ["end"])
        fault = self.lab.fault("Act", act("z"))
        self.assertEqual((fault.code, fault.reason), (5, "SESSION_CLOSED"))
        # Nothing was created for the unknown id.
        fault = self.lab.fault("Peek", act(), session="nobody")
        self.assertEqual(fault.reason, "CORRELATION_ERROR")

    def test_idle_sessions_expire_with_the_time_scale(self):
        lab = Lab(time_scale=0.0001)  # 600000 ms idle -> 60 ms
        try:
            lab.call("Open", open_("a"))
            time.sleep(0.3)
            fault = lab.fault("Act", act("b"))
            self.assertEqual((fault.code, fault.reason), (5, "SESSION_EXPIRED"))
        finally:
            lab.close()

    def test_sequence_numbers_replay_duplicates_and_refuse_gaps(self):
        self.lab.call("Open", open_())
        self.assertEqual(list(self.lab.call("Act", act("one"), sb_seq="1").log), ["one"])
        again = self.lab.call("Act", act("one"), sb_seq="1")
        self.assertTrue(again.replayed)
        self.assertEqual(list(again.log), ["one"])
        fault = self.lab.fault("Act", act("three"), sb_seq="3")
        self.assertEqual((fault.code, fault.reason, fault.metadata), (9, "OUT_OF_SEQUENCE", {"expected_seq": "2"}))
        self.assertEqual(list(self.lab.call("Act", act("two"), sb_seq="2").log), ["one", "two"])
        fault = self.lab.fault("Act", act(), sb_seq="x")
        self.assertEqual((fault.code, fault.reason), (3, "INVALID_SEQ"))

    def test_a_redelivered_message_id_is_answered_from_its_record(self):
        self.lab.call("Open", open_())
        first = self.lab.call("Act", act("a", observe=True), sb_message_id="m1")
        self.assertFalse(first.replayed)
        self.assertEqual(first.observed.delivery_count, 1)
        second = self.lab.call("Act", act("a", observe=True), sb_message_id="m1")
        self.assertTrue(second.replayed)
        self.assertEqual(list(second.log), ["a"])
        self.assertEqual(second.observed.delivery_count, 2)

    def test_a_sleep_past_the_deadline_applies_nothing(self):
        self.lab.call("Open", open_())
        fault = self.lab.fault("Act", act("late", sleep_ms=5000), timeout_ms=100)
        self.assertEqual(fault.code, 4)
        self.assertEqual(list(self.lab.call("Peek", act()).log), [])

    def test_faults_carry_code_message_reason_and_details(self):
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason="INNER", domain="x"))
        failure = lab_pb2.Failure(code=7, message="tab\there 😀", reason="NOPE", details=[detail])
        fault = self.lab.fault("Ping", act(fail=failure), session="", service=PING)
        status = fault.to_status()
        self.assertEqual((status.code, status.message), (7, "tab\there 😀"))
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        self.assertEqual((info.reason, info.domain), ("NOPE", "sessionbridge.conformance"))
        self.assertEqual(status.details[1], detail)

    def test_effects_and_records_survive_a_restart(self):
        self.lab.call("Open", open_("a"))
        self.lab.call("Post", act("posted"), sb_message_id="p1")
        incarnation = self.lab.call("Ping", act(observe=True), session="", service=PING).observed.incarnation
        self.lab.reopen(abandon=True)
        self.assertEqual(list(self.lab.call("Peek", act()).log), ["a", "posted"])
        self.assertEqual(self.lab.call("Ping", act(observe=True), session="", service=PING).observed.incarnation, incarnation + 1)
        # The redelivered one-way message is acknowledged again and not applied twice.
        self.assertEqual(self.lab.call("Post", act("posted"), sb_message_id="p1"), lab_pb2.PostAck())
        self.assertEqual(list(self.lab.call("Peek", act()).log), ["a", "posted"])

    def test_single_refuses_a_second_session_and_sequential_waits_for_the_first(self):
        self.lab.call("Open", open_(), session="one", service=SINGLE)
        fault = self.lab.fault("Open", open_(), session="two", service=SINGLE)
        self.assertEqual((fault.code, fault.reason), (6, "SESSION_ALREADY_EXISTS"))
        self.lab.call("Open", open_(), session="first", service=SEQUENTIAL)
        fault = self.lab.fault("Open", open_(), session="second", service=SEQUENTIAL, timeout_ms=200)
        self.assertEqual(fault.code, 4)
        done = []
        waiter = threading.Thread(
            target=lambda: done.append(self.lab.call("Open", open_("2"), session="second", service=SEQUENTIAL))
        )
        waiter.start()
        self.lab.call("Finish", act("1"), session="first", service=SEQUENTIAL)
        waiter.join(30)
        self.assertEqual(list(done[0].log), ["2"])

    def test_peek_is_read_only_and_ping_has_no_session(self):
        self.lab.call("Open", open_())
        self.assertEqual(self.lab.fault("Peek", act("x")).code, 3)
        self.assertEqual(self.lab.fault("Ping", act("x"), session="", service=PING).code, 3)
        self.assertEqual(self.lab.call("Ping", act(note="ü", payload=b"\x00\xff"), session="", service=PING).note, "ü")

    def test_ping_lives_in_its_own_sessionless_service(self):
        self.assertEqual(self.lab.call("Ping", act(observe=True), session="", service=PING).observed.session_id, "")
        with self.assertRaises(KeyError):
            self.lab.call("Ping", act(), session="", service=LAB)

    def test_the_expiry_sweep_is_paced_by_session_services_only(self):
        # PingLabService declares no idle timeout; it must not make the sweep run every 20 ms.
        self.assertEqual(sweep_period_s(1.0), 1.0)
        self.assertAlmostEqual(sweep_period_s(0.002), 0.3)

    def test_the_first_deliveries_can_be_refused(self):
        self.lab.call("Open", open_())
        request = act("once", fail_first_deliveries=2)
        self.assertEqual(self.lab.fault("Post", request, sb_message_id="r").code, 14)
        self.assertEqual(self.lab.fault("Post", request, sb_message_id="r").code, 14)
        self.lab.call("Post", request, sb_message_id="r")
        self.assertEqual(list(self.lab.call("Peek", act()).log), ["once"])

    def test_a_session_applies_its_messages_in_arrival_order(self):
        self.lab.call("Open", open_())
        calls = [
            Call("grpc", f"{LAB}/Act", [("sb-session-id", "s1")]) for _ in range(20)
        ]
        for call in calls:  # arrival order fixed here, as the NATS transport does
            self.lab.core.arrive(call)
        threads = [
            threading.Thread(target=self.lab.core.unary, args=(call, act(str(i), sleep_ms=(20 - i))))
            for i, call in reversed(list(enumerate(calls)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(list(self.lab.call("Peek", act()).log), [str(i) for i in range(20)])


class FaultyTest(unittest.TestCase):
    """Each faulty core breaks its own rule where the reference keeps it."""

    def make(self, name, **kwargs):
        lab = Lab(faulty_lab_service.BREAKS[name], **kwargs)
        self.addCleanup(lab.close)
        return lab

    def test_accept_unknown_breaks_s4(self):
        lab = self.make("accept-unknown")
        self.assertEqual(list(lab.call("Act", act("z"), session="nobody").log), ["z"])

    def test_never_expire_breaks_s12(self):
        lab = self.make("never-expire", time_scale=0.0001)
        lab.call("Open", open_("a"))
        time.sleep(0.3)
        self.assertEqual(list(lab.call("Act", act("b")).log), ["a", "b"])

    def test_ignore_deadlines_breaks_s15(self):
        lab = self.make("ignore-deadlines")
        lab.call("Open", open_())
        lab.call("Act", act("late", sleep_ms=300), timeout_ms=50)
        self.assertEqual(list(lab.call("Peek", act()).log), ["late"])

    def test_post_not_durable_breaks_s9_s10(self):
        lab = self.make("post-not-durable")
        lab.call("Open", open_("a"))
        self.assertEqual(lab.call("Post", act("posted")), lab_pb2.PostAck())
        # It looks applied, and reading it does not make it durable.
        self.assertEqual(list(lab.call("Peek", act()).log), ["a", "posted"])
        lab.reopen(abandon=True)
        self.assertEqual(list(lab.call("Peek", act()).log), ["a"])


if __name__ == "__main__":
    unittest.main()
