package sessionbridge.lab;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import sessionbridge.conformance.v1.Lab.Failure;
import sessionbridge.conformance.v1.Lab.Instruction;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.LabItem;
import sessionbridge.conformance.v1.Lab.LabReply;
import sessionbridge.conformance.v1.Lab.Observed;
import sessionbridge.conformance.v1.Lab.PostAck;
import sessionbridge.lab.SessionStore.Session;
import sessionbridge.lab.state.Outcome;
import sessionbridge.lab.state.SessionRecord;

/**
 * The lab contract's duties (lab.proto header), independent of the transport: state per
 * session, unknown and ended sessions, expiry, order, sequence numbers, redelivery,
 * durability, deadlines, faults and metadata.
 */
final class LabEngine {
  enum Op {
    OPEN,
    ACT,
    PEEK,
    POST,
    FINISH,
    ITEMS,
    PING
  }

  /** Every lab service's idle timeout in lab.proto, before ServiceSettings.time_scale [S12]. */
  static final long IDLE_TIMEOUT_MS = 600_000;

  static final String SINGLE_SERVICE = "sessionbridge.conformance.v1.SingleLabService";

  /** Largest stream item the service builds, so one request cannot exhaust its memory. */
  static final int MAX_ITEM_BYTES = 4 << 20;

  /** Keeps the count of message ids for Observed.delivery_count bounded in memory. */
  private static final int MAX_TRACKED_MESSAGE_IDS = 1_000_000;

  private final SessionStore store;
  private final Deviation deviation;
  private final long idleMs;
  private final ConcurrentHashMap<String, Integer> deliveries = new ConcurrentHashMap<>();
  /** SINGLE allows one live session: its starts are checked and applied one at a time [S3]. */
  private final ReentrantLock singleStart = new ReentrantLock(true);
  private final ScheduledExecutorService sweeper =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "sb-lab-expiry");
            t.setDaemon(true);
            return t;
          });

  LabEngine(SessionStore store, double timeScale, Deviation deviation) {
    this.store = store;
    this.deviation = deviation;
    double scale = timeScale <= 0 ? 1 : timeScale;
    this.idleMs = Math.max(1, Math.round(IDLE_TIMEOUT_MS * scale));
    // The service expires idle sessions by itself, not only when a message arrives [S12].
    long every = Math.min(1000, Math.max(10, idleMs / 10));
    sweeper.scheduleWithFixedDelay(this::sweep, every, every, TimeUnit.MILLISECONDS);
  }

  void close() {
    sweeper.shutdownNow();
  }

  /** The answer of a unary session operation or Ping: a LabReply, or a PostAck for Post. */
  Message unary(String service, Op op, Instruction ins) throws LabFault {
    CallFacts facts = CallFacts.current();
    facts.reply(ins.getReplyHeadersMap(), ins.getReplyTrailersMap());
    long remainingMs = remainingMs();
    if ((op == Op.PEEK || op == Op.PING) && ins.getAppendCount() > 0) {
      throw LabFault.of(Status.Code.INVALID_ARGUMENT, "INVALID_REQUEST", op + " must not append");
    }
    if (facts.badSeq) throw LabFault.of(Status.Code.INVALID_ARGUMENT, "INVALID_SEQ", "sb-seq is not a number from 1");
    int delivery = countDelivery(facts.messageId);
    if (op == Op.PING) return sessionless(ins, facts, remainingMs, delivery);

    if (facts.sessionId.isEmpty()) {
      throw LabFault.of(Status.Code.NOT_FOUND, "CORRELATION_ERROR", "no sb-session-id");
    }
    Session s = op == Op.OPEN ? store.getOrCreate(service, facts.sessionId) : store.get(service, facts.sessionId);
    if (s == null) throw unknown(facts.sessionId);
    boolean single = op == Op.OPEN && service.equals(SINGLE_SERVICE);
    if (single) acquire(singleStart);
    try {
      acquire(s.lock);
      try {
        return applyLocked(s, op, ins, facts, remainingMs, delivery, single);
      } finally {
        s.lock.unlock();
      }
    } finally {
      if (single) singleStart.unlock();
    }
  }

  private Message applyLocked(
      Session s, Op op, Instruction ins, CallFacts facts, long remainingMs, int delivery, boolean single)
      throws LabFault {
    abandonIfDone();
    SessionRecord rec = s.record;
    if (rec == null && op != Op.OPEN) throw unknown(s.id);
    if (rec != null) {
      // Redelivery: the recorded outcome, nothing applied [S10]; a number already applied
      // answers its recorded outcome again [S7].
      Outcome recorded = rec.getByMessageIdMap().get(facts.messageId);
      if (recorded == null && facts.seq != null && facts.seq <= rec.getLastSeq()) {
        recorded = rec.getBySeqMap().get(facts.seq);
      }
      if (recorded != null) {
        touch(s);
        return replay(op, recorded, ins, facts, remainingMs, delivery);
      }
      rec = expireIfIdle(s);
      if (rec.getStatus() == SessionRecord.Status.STATUS_CLOSED) {
        throw LabFault.of(Status.Code.NOT_FOUND, "SESSION_CLOSED", "session " + s.id + " was finished");
      }
      if (rec.getStatus() == SessionRecord.Status.STATUS_EXPIRED) {
        throw LabFault.of(Status.Code.NOT_FOUND, "SESSION_EXPIRED", "session " + s.id + " expired");
      }
    }
    if (single && store.hasOtherLive(s.service, s.id)) {
      throw LabFault.of(Status.Code.ALREADY_EXISTS, "SESSION_ALREADY_EXISTS", "another session is live");
    }
    long lastSeq = rec == null ? 0 : rec.getLastSeq();
    if (facts.seq != null && facts.seq != lastSeq + 1) {
      // A gap is refused, never reordered [S7].
      throw LabFault.of(
          Status.Code.FAILED_PRECONDITION.value(),
          "OUT_OF_SEQUENCE",
          "expected sb-seq " + (lastSeq + 1) + ", got " + facts.seq,
          Map.of("expected_seq", Long.toString(lastSeq + 1)),
          java.util.List.of());
    }
    if (delivery <= ins.getFailFirstDeliveries()) {
      throw LabFault.of(
          Status.Code.UNAVAILABLE, "FAIL_FIRST_DELIVERIES", "delivery " + delivery + " refused by instruction");
    }
    if (rec != null) touch(s);
    sleep(ins.getSleepMs());

    LabFault fault = ins.hasFail() ? fault(ins.getFail()) : null;
    if (rec == null && fault != null) throw fault; // a failed Open creates nothing
    SessionRecord.Builder next =
        rec == null
            ? SessionRecord.newBuilder()
                .setService(s.service)
                .setSessionId(s.id)
                .setStatus(SessionRecord.Status.STATUS_LIVE)
            : rec.toBuilder();
    Message answer = null;
    Outcome.Builder outcome = Outcome.newBuilder();
    if (fault != null) {
      outcome.setStatus(fault.status().toByteString());
    } else {
      next.addAllLog(ins.getAppendList());
      if (op == Op.POST) {
        answer = PostAck.getDefaultInstance();
      } else {
        answer = reply(next.getLogList(), ins, facts, remainingMs, delivery);
      }
      outcome.setReply(answer.toByteString());
      if (op == Op.FINISH) next.setStatus(SessionRecord.Status.STATUS_CLOSED);
    }
    if (facts.seq != null) {
      next.setLastSeq(facts.seq);
      next.putBySeq(facts.seq, outcome.build());
    }
    if (!facts.messageId.isEmpty()) next.putByMessageId(facts.messageId, outcome.build());
    s.lastActivityMs = System.currentTimeMillis();
    next.setLastActivityEpochMs(s.lastActivityMs);
    // Durable before answered, one-way messages included [S9, S10].
    store.commit(s, next.build());
    if (fault != null) throw fault;
    return answer;
  }

  /** Where a stream's items go, whatever the transport. */
  interface ItemSink {
    /** True when the caller went away: the stream stops (S15). */
    boolean cancelled();

    void send(LabItem item);
  }

  /** What an Items call's stream needs, taken when its turn came [S6]. */
  record ItemsStart(ItemsRequest request, CallFacts facts, long remainingMs, int delivery) {}

  /**
   * The first part of an Items call, run in the session's turn: checked like any exclusive
   * message (unknown and ended sessions, sb-seq) [S4, S7, S12]. The stream itself applies
   * nothing and runs outside the turn ({@link #streamItems}).
   */
  ItemsStart startItems(String service, ItemsRequest req) throws LabFault {
    CallFacts facts = CallFacts.current();
    long remainingMs = remainingMs();
    if (req.getItemBytes() > MAX_ITEM_BYTES) {
      throw LabFault.of(Status.Code.INVALID_ARGUMENT, "INVALID_REQUEST", "item_bytes above " + MAX_ITEM_BYTES);
    }
    int delivery = countDelivery(facts.messageId);
    checkItems(service, facts);
    return new ItemsStart(req, facts, remainingMs, delivery);
  }

  /** Sends the items, pausing between them; the pauses end at the deadline or on cancel [S15]. */
  void streamItems(ItemsStart start, ItemSink sink) throws LabFault {
    ItemsRequest req = start.request();
    ByteString payload = ByteString.copyFrom(new byte[req.getItemBytes()]);
    for (int i = 0; i < req.getCount(); i++) {
      if (i > 0) sleep(req.getIntervalMs());
      abandonIfDone();
      if (sink.cancelled()) return;
      LabItem.Builder item = LabItem.newBuilder().setIndex(i).setPayload(payload);
      if (req.getObserve()) item.setObserved(observed(start.facts(), start.remainingMs(), start.delivery()));
      sink.send(item.build());
    }
    if (req.hasFail()) throw fault(req.getFail());
  }

  /** Checks an Items call like any exclusive message; the stream applies nothing. */
  private void checkItems(String service, CallFacts facts) throws LabFault {
    if (facts.badSeq) throw LabFault.of(Status.Code.INVALID_ARGUMENT, "INVALID_SEQ", "sb-seq is not a number from 1");
    if (facts.sessionId.isEmpty()) throw LabFault.of(Status.Code.NOT_FOUND, "CORRELATION_ERROR", "no sb-session-id");
    Session s = store.get(service, facts.sessionId);
    if (s == null) throw unknown(facts.sessionId);
    acquire(s.lock);
    try {
      abandonIfDone();
      SessionRecord rec = s.record;
      if (rec == null) throw unknown(s.id);
      if (facts.seq != null && facts.seq <= rec.getLastSeq()) return; // nothing to apply again [S7]
      rec = expireIfIdle(s);
      if (rec.getStatus() == SessionRecord.Status.STATUS_CLOSED) {
        throw LabFault.of(Status.Code.NOT_FOUND, "SESSION_CLOSED", "session " + s.id + " was finished");
      }
      if (rec.getStatus() == SessionRecord.Status.STATUS_EXPIRED) {
        throw LabFault.of(Status.Code.NOT_FOUND, "SESSION_EXPIRED", "session " + s.id + " expired");
      }
      if (facts.seq != null && facts.seq != rec.getLastSeq() + 1) {
        throw LabFault.of(
            Status.Code.FAILED_PRECONDITION.value(),
            "OUT_OF_SEQUENCE",
            "expected sb-seq " + (rec.getLastSeq() + 1) + ", got " + facts.seq,
            Map.of("expected_seq", Long.toString(rec.getLastSeq() + 1)),
            java.util.List.of());
      }
      s.lastActivityMs = System.currentTimeMillis();
      SessionRecord.Builder next = rec.toBuilder().setLastActivityEpochMs(s.lastActivityMs);
      if (facts.seq != null) next.setLastSeq(facts.seq).putBySeq(facts.seq, Outcome.getDefaultInstance());
      store.commit(s, next.build());
    } finally {
      s.lock.unlock();
    }
  }

  Observed observed(CallFacts facts, long remainingMs, int delivery) {
    return Observed.newBuilder()
        .setSessionId(facts.sessionId)
        .setSeq(facts.seq == null ? 0 : facts.seq)
        .setMessageId(facts.messageId)
        .setPrincipal(facts.principal)
        .setDeadlineRemainingMs(remainingMs)
        .putAllMetadata(facts.metadata)
        .setTraceparent(facts.traceparent)
        .setDeliveryCount(delivery)
        .setOperation(facts.operation)
        .setTransport(facts.transport)
        .setIncarnation(store.incarnation())
        .build();
  }

  int countDelivery(String messageId) {
    if (messageId.isEmpty()) return 1;
    if (deliveries.size() >= MAX_TRACKED_MESSAGE_IDS) deliveries.clear();
    return deliveries.merge(messageId, 1, Integer::sum);
  }

  /** Time left until the call's deadline, -1 without one. */
  static long remainingMs() {
    Deadline d = Context.current().getDeadline();
    return d == null ? -1 : Math.max(0, d.timeRemaining(TimeUnit.MILLISECONDS));
  }

  /**
   * Waits, abandoned when the call's deadline passes or it is cancelled [S15]. The
   * deviation IGNORE_DEADLINES is checked here and in {@link #abandonIfDone} only.
   */
  void sleep(long ms) throws LabFault {
    if (ms <= 0) return;
    Context ctx = Context.current();
    if (deviation == Deviation.IGNORE_DEADLINES) {
      try {
        Thread.sleep(ms);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return;
    }
    CountDownLatch done = new CountDownLatch(1);
    Context.CancellationListener listener = c -> done.countDown();
    ctx.addListener(listener, Runnable::run);
    try {
      done.await(ms, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      ctx.removeListener(listener);
    }
    abandonIfDone();
  }

  /** A call whose deadline passed or that was cancelled applies nothing [S15]. */
  void abandonIfDone() throws LabFault {
    if (deviation == Deviation.IGNORE_DEADLINES) return;
    Context ctx = Context.current();
    if (!ctx.isCancelled()) return;
    Deadline d = ctx.getDeadline();
    if (d != null && d.isExpired()) {
      throw LabFault.of(Status.Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline passed; nothing applied");
    }
    throw LabFault.of(Status.Code.CANCELLED, "CANCELLED", "call cancelled; nothing applied");
  }

  private Message sessionless(Instruction ins, CallFacts facts, long remainingMs, int delivery) throws LabFault {
    if (delivery <= ins.getFailFirstDeliveries()) {
      throw LabFault.of(
          Status.Code.UNAVAILABLE, "FAIL_FIRST_DELIVERIES", "delivery " + delivery + " refused by instruction");
    }
    sleep(ins.getSleepMs());
    if (ins.hasFail()) throw fault(ins.getFail());
    return reply(java.util.List.of(), ins, facts, remainingMs, delivery);
  }

  private LabReply reply(
      java.util.List<String> log, Instruction ins, CallFacts facts, long remainingMs, int delivery) {
    LabReply.Builder b = LabReply.newBuilder().addAllLog(log).setPayload(ins.getPayload()).setNote(ins.getNote());
    if (ins.getObserve()) b.setObserved(observed(facts, remainingMs, delivery));
    return b.build();
  }

  private Message replay(Op op, Outcome recorded, Instruction ins, CallFacts facts, long remainingMs, int delivery)
      throws LabFault {
    try {
      if (!recorded.getStatus().isEmpty()) {
        throw LabFault.fromStatus(com.google.rpc.Status.parseFrom(recorded.getStatus()));
      }
      if (op == Op.POST) return PostAck.getDefaultInstance();
      ByteString bytes = recorded.getReply();
      LabReply.Builder b = LabReply.parseFrom(bytes).toBuilder().setReplayed(true);
      // Observed is about this delivery, not the recorded one.
      if (ins.getObserve()) b.setObserved(observed(facts, remainingMs, delivery));
      return b.build();
    } catch (InvalidProtocolBufferException e) {
      throw LabFault.of(Status.Code.INTERNAL, "STORE_FAILURE", "recorded outcome unreadable");
    }
  }

  private static LabFault fault(Failure f) {
    int code = f.getCode();
    if (code < 1 || code > 16) {
      return LabFault.of(Status.Code.INVALID_ARGUMENT, "INVALID_REQUEST", "fail.code must be 1-16, got " + code);
    }
    return LabFault.of(code, f.getReason(), f.getMessage(), Map.of(), f.getDetailsList());
  }

  private static LabFault unknown(String id) {
    return LabFault.of(Status.Code.NOT_FOUND, "CORRELATION_ERROR", "no session " + id);
  }

  private static void touch(Session s) {
    s.lastActivityMs = System.currentTimeMillis();
  }

  /**
   * Ends a live session idle for the scaled idle timeout [S12]. The deviation NEVER_EXPIRE
   * is checked here only.
   */
  private SessionRecord expireIfIdle(Session s) throws LabFault {
    SessionRecord rec = s.record;
    if (deviation == Deviation.NEVER_EXPIRE) return rec;
    if (rec == null || rec.getStatus() != SessionRecord.Status.STATUS_LIVE) return rec;
    if (System.currentTimeMillis() - s.lastActivityMs < idleMs) return rec;
    store.commit(s, rec.toBuilder().setStatus(SessionRecord.Status.STATUS_EXPIRED).build());
    return s.record;
  }

  private void sweep() {
    for (Session s : store.all()) {
      if (!s.lock.tryLock()) continue; // busy: a message is being applied, so not idle
      try {
        expireIfIdle(s);
      } catch (LabFault | RuntimeException e) {
        System.err.println("sb-lab-java: expiry of " + s.id + " failed: " + e.getMessage());
      } finally {
        s.lock.unlock();
      }
    }
  }

  /** Waits for a lock, giving up when the call's deadline passes or it is cancelled [S15]. */
  private void acquire(ReentrantLock lock) throws LabFault {
    try {
      while (!lock.tryLock(20, TimeUnit.MILLISECONDS)) abandonIfDone();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw LabFault.of(Status.Code.CANCELLED, "CANCELLED", "interrupted");
    }
  }
}
