"""The session rules of the lab contract, independent of any transport.

Every point of the header comment of proto/sessionbridge/conformance/v1/lab.proto is
implemented here, in the order a message meets them:

1. arrival: the delivery is counted per `sb-message-id` and the session's idle clock is
   reset, in one durable transaction;
2. the session's turn: exclusive messages one at a time in arrival order, shared ones
   (Peek) beside each other [S6] (turns.py);
3. the session must be live: unknown ids answer CORRELATION_ERROR [S4], ended ones
   SESSION_CLOSED or SESSION_EXPIRED [S12];
4. redelivery and sequence numbers: an applied message id or `sb-seq` answers its
   recorded outcome [S10, S7]; a gap answers OUT_OF_SEQUENCE [S7];
5. the instruction, in its order: sleep (abandoned at the deadline [S15]), fail [S14],
   append; the effect and the outcome are committed before the answer [S9, S10].

A few small methods (`unknown_session_fault`, `idle_expired`, `pause`, `finish_waiting`,
`durable`) hold single decisions of the rules; the faulty services of
conformance/faulty/python override exactly one of them each.
"""

import threading

from google.rpc import code_pb2, status_pb2
from sessionbridge.conformance.v1 import lab_pb2
from sessionbridge.v1 import options_pb2

from faults import LabFault, invalid_argument, not_found
from lab_store import Session, now_ms
from turns import Turns

PACKAGE = "sessionbridge.conformance.v1"


class Method:
    """One operation of the contract, with its session options read from the .proto."""

    def __init__(self, service, descriptor):
        self.service = service
        self.name = descriptor.name
        self.operation = f"{service.full_name}/{descriptor.name}"
        self.request_class = getattr(lab_pb2, descriptor.input_type.name)
        self.response_class = getattr(lab_pb2, descriptor.output_type.name)
        self.server_streaming = descriptor.server_streaming
        opts = descriptor.GetOptions()
        has = opts.HasExtension(options_pb2.method)
        session_opts = opts.Extensions[options_pb2.method]
        self.starts = session_opts.starts_session
        self.ends = session_opts.ends_session
        self.one_way = session_opts.one_way
        self.shared = session_opts.access == options_pb2.ACCESS_SHARED
        # A method without session options is sessionless, except in a SINGLE service
        # where every operation belongs to its one session.
        self.sessionless = not has and service.execution != options_pb2.EXECUTION_MODALITY_SINGLE


class Service:
    """One service of the contract, with its execution modality and timeouts."""

    def __init__(self, descriptor):
        self.full_name = descriptor.full_name
        opts = descriptor.GetOptions().Extensions[options_pb2.service]
        self.execution = opts.execution
        self.idle_timeout_ms = opts.idle_timeout_ms
        self.max_lifetime_ms = opts.max_lifetime_ms
        self.methods = {m.name: Method(self, m) for m in descriptor.methods}


SERVICES = {s.full_name: Service(s) for s in lab_pb2.DESCRIPTOR.services_by_name.values()}
METHODS = {m.operation: m for s in SERVICES.values() for m in s.methods.values()}

# Items larger than this are refused rather than allocated (no unbounded memory).
MAX_ITEM_BYTES = 16 << 20


class LabCore:
    def __init__(self, store, time_scale=1.0):
        self.store = store
        self.time_scale = time_scale if time_scale > 0 else 1.0
        self._turns = {}  # (service, session id) -> Turns; removed when idle
        self._starters = {name: Turns() for name in SERVICES}  # SEQUENTIAL starters, in order
        self._turns_lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="lab-expiry", daemon=True)
        self._sweeper.start()

    def close(self):
        self._stop.set()

    # ---- decisions the faulty services override, one each -------------------------------

    def unknown_session_fault(self, call):
        """S4: a non-starter for an id with no session changes nothing."""
        return not_found("CORRELATION_ERROR", f"no live session {call.session_id!r}")

    def idle_expired(self, service, session, at_ms):
        """S12: idle for the service's idle timeout (or past its lifetime), scaled."""
        idle = service.idle_timeout_ms * self.time_scale
        if idle > 0 and at_ms - session.last_active_ms >= idle:
            return True
        lifetime = service.max_lifetime_ms * self.time_scale
        return lifetime > 0 and at_ms - session.created_ms >= lifetime

    def pause(self, call, ms):
        """S15: sleep_ms, abandoned at the deadline or on cancel."""
        call.sleep(ms)

    def finish_waiting(self, call):
        """S15: after the sleep, a call whose deadline passed applies nothing."""
        call.check()

    def durable(self, call, method):
        """S9, S10: every effect is on disk before the answer, one-way messages included."""
        return True

    # ---- the operations ---------------------------------------------------------------

    def arrive(self, call, provisional=False):
        """Takes the call's place in its session's queue now, so arrival order is kept even
        when the transport hands the call to another thread (S6). Idempotent. provisional:
        the transport is not yet sure the call will reach unary() (see turns.py)."""
        if call.ticket is not None:
            return
        method = METHODS.get(call.operation)
        if method is None or method.sessionless or not call.session_id:
            return
        key = (method.service.full_name, call.session_id)
        # A numbered message updates the sequence, so it runs alone even when shared.
        shared = method.shared and call.seq is None
        with self._turns_lock:
            turns = self._turns.get(key)
            if turns is None:
                turns = self._turns[key] = Turns()
            call.ticket = (key, turns, turns.take(shared, provisional))

    def unary(self, call, request):
        """Answers one unary or one-way call: the response message, or raises LabFault."""
        method = METHODS[call.operation]
        if call.seq_fault is not None:
            raise call.seq_fault
        instruction = request.instruction
        _check_instruction(instruction)
        if method.sessionless:
            return self._sessionless(call, method, instruction)
        if not call.session_id:
            raise invalid_argument("MISSING_SESSION_ID", "sb-session-id is required for this operation")
        if method.shared and len(instruction.append) > 0:
            raise invalid_argument("SHARED_APPEND", f"{method.name} is read-only: append must be empty")
        self.arrive(call)
        with self._turn(call):
            return self._in_turn(call, method, instruction)

    def items(self, call, request):
        """Server streaming: yields LabItem messages, then raises the requested fault."""
        method = METHODS[call.operation]
        if request.HasField("fail"):
            _check_failure(request.fail)
        if request.item_bytes > MAX_ITEM_BYTES:
            raise invalid_argument("ITEM_TOO_LARGE", f"item_bytes is limited to {MAX_ITEM_BYTES}")
        if not call.session_id:
            raise invalid_argument("MISSING_SESSION_ID", "sb-session-id is required for this operation")
        self.arrive(call)
        with self._turn(call):
            session = self._arrival(call, method)
            self._require_live(call, session)
            for index in range(request.count):
                if index > 0 and request.interval_ms > 0:
                    self.pause(call, request.interval_ms)
                call.check()
                item = lab_pb2.LabItem(index=index, payload=bytes([index % 256]) * request.item_bytes)
                if request.observe:
                    item.observed.CopyFrom(self.observed(call))
                yield item
            if request.HasField("fail"):
                raise _fault_of(request.fail)

    def observed(self, call):
        return lab_pb2.Observed(
            session_id=call.session_id,
            seq=call.seq or 0,
            message_id=call.message_id,
            principal=call.principal,
            deadline_remaining_ms=call.remaining_at_receipt_ms,
            metadata=call.metadata,
            traceparent=call.traceparent,
            delivery_count=call.delivery_count,
            operation=call.operation,
            transport=call.transport,
            incarnation=self.store.incarnation,
        )

    # ---- the steps ----------------------------------------------------------------------

    def _sessionless(self, call, method, instruction):
        if len(instruction.append) > 0:
            raise invalid_argument("SESSIONLESS_APPEND", f"{method.name} has no session: append must be empty")
        if call.message_id:
            with self.store.transaction() as store:
                call.delivery_count = store.count_delivery(call.message_id)
        self._fail_first_deliveries(call, instruction)
        self.pause(call, instruction.sleep_ms)
        self.finish_waiting(call)
        if instruction.HasField("fail"):
            raise _fault_of(instruction.fail)
        return self._reply(call, method, instruction, [])

    def _in_turn(self, call, method, instruction):
        service = method.service
        session = self._arrival(call, method)
        if session is None and not method.starts:
            fault = self.unknown_session_fault(call)
            if fault is not None:
                raise fault
        if session is not None:
            self._require_live(call, session)
            replay = self._replay(call, method, instruction, session)
            if replay is not None:
                return replay
            if method.starts and service.execution == options_pb2.EXECUTION_MODALITY_SINGLE:
                # REJECT_DUPLICATE: even the live session's own id does not start it twice (S3).
                raise _already_exists()
        elif method.starts:
            self._admit(call, service)
        self._fail_first_deliveries(call, instruction)
        self.pause(call, instruction.sleep_ms)
        self.finish_waiting(call)
        numbered = call.seq is not None and not method.starts
        if instruction.HasField("fail"):
            fault = _fault_of(instruction.fail)
            with self.store.transaction(self.durable(call, method)) as store:
                current = store.session(service.full_name, call.session_id)
                if current is not None and numbered:
                    current.last_seq = call.seq
                    store.save_session(current)
                self._record(store, call, method, numbered, None, fault)
            raise fault
        return self._apply(call, method, instruction, numbered)

    def _arrival(self, call, method):
        """Counts the delivery and resets the idle clock of a live session, durably."""
        service = method.service
        at = now_ms()
        with self.store.transaction(self.durable(call, method)) as store:
            if call.message_id:
                call.delivery_count = store.count_delivery(call.message_id)
            session = store.session(service.full_name, call.session_id)
            if session is not None and session.state == "live":
                if self.idle_expired(service, session, at):
                    session.state = "expired"
                else:
                    session.last_active_ms = at
                store.save_session(session)
            return session

    def _require_live(self, call, session):
        if session is None:
            raise self.unknown_session_fault(call) or not_found("CORRELATION_ERROR", "no live session")
        if session.state == "closed":
            raise not_found("SESSION_CLOSED", f"session {call.session_id!r} was finished")
        if session.state == "expired":
            raise not_found("SESSION_EXPIRED", f"session {call.session_id!r} expired")

    def _replay(self, call, method, instruction, session):
        """S10 then S7: the recorded outcome of an applied message id or sequence number."""
        recorded, gap = None, None
        with self.store.reading() as store:
            if call.message_id:
                recorded = store.outcome(session.service, session.id, "msg", call.message_id)
            numbered = call.seq is not None and not method.starts
            if recorded is None and numbered:
                if call.seq <= session.last_seq:
                    recorded = store.outcome(session.service, session.id, "seq", call.seq)
                    if recorded is None:
                        # Applied before this process kept outcomes for it: nothing to
                        # answer but the fact that it was applied.
                        recorded = (method.response_class().SerializeToString(), None)
                elif call.seq > session.last_seq + 1:
                    expected = session.last_seq + 1
                    gap = LabFault(
                        code_pb2.FAILED_PRECONDITION,
                        f"sb-seq {call.seq} skips ahead: expected {expected}",
                        "OUT_OF_SEQUENCE",
                        metadata={"expected_seq": str(expected)},
                    )
        # Faults are raised outside transactions: raising inside one rolls it back.
        if gap is not None:
            raise gap
        if recorded is None:
            return None
        reply, fault = recorded
        if fault is not None:
            raise LabFault.from_status(status_pb2.Status.FromString(fault))
        response = method.response_class.FromString(reply)
        if isinstance(response, lab_pb2.LabReply):
            response.replayed = True
            if instruction.observe:
                response.observed.CopyFrom(self.observed(call))
        return response

    def _admit(self, call, service):
        """A new session of a SINGLE service is refused while another lives (S3, S6); one of a
        SEQUENTIAL service waits, in arrival order of the starters, until none lives (S6)."""
        if service.execution == options_pb2.EXECUTION_MODALITY_SINGLE:
            if self._others_live(service, call.session_id):
                raise _already_exists()
        elif service.execution == options_pb2.EXECUTION_MODALITY_SEQUENTIAL:
            starters = self._starters[service.full_name]
            ticket = starters.take(False)
            try:
                starters.wait(ticket, call)
                call.wait_until(lambda: not self._others_live(service, call.session_id))
            finally:
                starters.release(ticket)

    def _others_live(self, service, session_id):
        others = [s for s in self._expire_idle(service.full_name) if s.id != session_id]
        return len(others) > 0

    def _expire_idle(self, service_name=None):
        """Marks idle sessions expired (S12); returns the sessions still live."""
        at = now_ms()
        with self.store.reading() as store:
            live = store.live_sessions(service_name) if service_name else store.all_live_sessions()
        idle = [s for s in live if self.idle_expired(SERVICES[s.service], s, at)]
        if idle:
            with self.store.transaction() as store:
                for session in idle:
                    current = store.session(session.service, session.id)
                    # Looked at again inside the transaction: a message may just have come.
                    if current is not None and current.state == "live" and self.idle_expired(
                        SERVICES[current.service], current, at
                    ):
                        current.state = "expired"
                        store.save_session(current)
        return [s for s in live if s not in idle]

    def _fail_first_deliveries(self, call, instruction):
        """S11: the first N deliveries of a message id fail as UNAVAILABLE, applying nothing."""
        if instruction.fail_first_deliveries > 0 and call.delivery_count <= instruction.fail_first_deliveries:
            raise LabFault(
                code_pb2.UNAVAILABLE,
                f"delivery {call.delivery_count} of {instruction.fail_first_deliveries} refused on purpose",
                "FAIL_FIRST_DELIVERIES",
            )

    def _apply(self, call, method, instruction, numbered):
        service = method.service
        at = now_ms()
        response, ended = None, None
        with self.store.transaction(self.durable(call, method)) as store:
            session = store.session(service.full_name, call.session_id)
            if session is None:
                session = Session(service.full_name, call.session_id, "live", [], 0, at, at)
            if session.state != "live":
                # Ended (Finish or expiry) while this message slept: it is not applied.
                ended = session
            else:
                session.log.extend(instruction.append)
                session.last_active_ms = at
                if numbered:
                    session.last_seq = call.seq
                if method.ends:
                    session.state = "closed"
                store.save_session(session)
                response = self._reply(call, method, instruction, session.log)
                self._record(store, call, method, numbered, response, None)
        if ended is not None:
            self._require_live(call, ended)
        return response

    def _record(self, store, call, method, numbered, response, fault):
        """Keeps the outcome for redelivery (S10) and for the sequence number (S7)."""
        if response is None and fault is None:
            return
        reply = None
        if response is not None:
            recorded = method.response_class()
            recorded.CopyFrom(response)
            if isinstance(recorded, lab_pb2.LabReply):
                recorded.ClearField("observed")
            reply = recorded.SerializeToString()
        status = fault.to_status().SerializeToString() if fault is not None else None
        if call.message_id:
            store.record_outcome(method.service.full_name, call.session_id, "msg", call.message_id, reply, status)
        if numbered:
            store.record_outcome(method.service.full_name, call.session_id, "seq", call.seq, reply, status)

    def _reply(self, call, method, instruction, log):
        if method.response_class is lab_pb2.PostAck:
            return lab_pb2.PostAck()
        reply = lab_pb2.LabReply(log=log, payload=instruction.payload, note=instruction.note)
        if instruction.observe:
            reply.observed.CopyFrom(self.observed(call))
        return reply

    def _turn(self, call):
        return _Turn(self, call)

    def release(self, call):
        """Gives the call's session turn back (idempotent); transports call it when a call
        taken by arrive() ends before reaching unary()."""
        if call.ticket is None:
            return
        key, turns, ticket = call.ticket
        call.ticket = None
        with self._turns_lock:
            turns.release(ticket)
            # Forget the queue of a quiet session: memory stays bounded by live traffic.
            if turns.idle() and self._turns.get(key) is turns:
                del self._turns[key]

    def _sweep(self):
        """Expires idle sessions on its own, so expiry needs no message to happen (S12)."""
        period = sweep_period_s(self.time_scale)
        while not self._stop.wait(period):
            try:
                self._expire_idle()
            except Exception:  # the store closed at shutdown
                return


def sweep_period_s(time_scale):
    """How often idle sessions are looked for: a quarter of the shortest scaled idle timeout,
    between 20 ms and 1 s. Services without sessions (PingLabService) have no idle timeout
    and set no pace."""
    shortest = min(s.idle_timeout_ms for s in SERVICES.values() if s.idle_timeout_ms > 0)
    return max(0.02, min(1.0, shortest * time_scale / 4000))


class _Turn:
    def __init__(self, core, call):
        self._core = core
        self._call = call

    def __enter__(self):
        if self._call.ticket is not None and not self._call.ticket[1].claim(self._call.ticket[2]):
            # Given up while the call was not running yet: queue again.
            self._call.ticket = None
            self._core.arrive(self._call)
        if self._call.ticket is not None:
            _key, turns, ticket = self._call.ticket
            try:
                turns.wait(ticket, self._call)
            except BaseException:
                self._core.release(self._call)
                raise

    def __exit__(self, *exc):
        self._core.release(self._call)
        return False


def _already_exists():
    return LabFault(code_pb2.ALREADY_EXISTS, "this service has a live session", "SESSION_ALREADY_EXISTS")


def _check_failure(failure):
    if not 1 <= failure.code <= 16:
        raise invalid_argument("INVALID_FAILURE", f"fail.code must be 1-16, got {failure.code}")


def _check_instruction(instruction):
    if instruction.HasField("fail"):
        _check_failure(instruction.fail)


def _fault_of(failure):
    return LabFault(failure.code, failure.message, failure.reason, failure.details)

