package sessionbridge.lab;

import io.grpc.Context;
import io.grpc.Status;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs the messages of each session one at a time, in the order the transports hand them
 * over [S6], on worker threads, so a {@code sleep_ms} blocks neither the transport's thread
 * nor other sessions.
 *
 * <p>Every transport calls {@link #dispatch} on its one receiving thread in the order the
 * calls arrived (gRPC: the connection's event loop, the server runs with a direct executor;
 * HTTP: the Connect server's single event loop; NATS: the subscription's dispatcher thread).
 * The order is fixed there, before any worker thread runs: a per-session FIFO queue, which
 * exists only while the session has messages waiting, so idle sessions cost nothing here.
 *
 * <p>A queue holds the running message and at most {@link #MAX_WAITING_PER_SESSION} waiting
 * behind it: a client pipelining more into one session is answered RESOURCE_EXHAUSTED for
 * the excess instead of growing the queue without bound. A waiting message whose call ends
 * (deadline, cancel) leaves the queue at once and gives its place back.
 */
final class SessionTurns implements AutoCloseable {
  /** Messages one session may have waiting behind its running one. */
  static final int MAX_WAITING_PER_SESSION = 64;

  private final ExecutorService workers;
  /** Per session (service and id): its messages, the running one first. */
  private final ConcurrentHashMap<String, ArrayDeque<Turn>> queues = new ConcurrentHashMap<>();

  /** One message's place in its session's queue. */
  private static final class Turn {
    final Runnable task;

    Turn(Runnable task) {
      this.task = task;
    }
  }

  SessionTurns() {
    AtomicLong n = new AtomicLong();
    // A sleeping message holds its worker, so workers are created as needed: sessions
    // never wait for each other (S6: different sessions run concurrently).
    this.workers =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "sb-lab-worker-" + n.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
  }

  /**
   * Hands a call over in arrival order. Sessionless calls (no session id, PingLabService)
   * run at once on a worker; the others queue behind the earlier messages of their session.
   * The task runs in {@code context} (the call's deadline, cancellation and CallFacts).
   *
   * @throws LabFault RESOURCE_EXHAUSTED when the session already has {@link
   *     #MAX_WAITING_PER_SESSION} messages waiting; the task then never runs
   */
  void dispatch(Context context, String service, String sessionId, boolean sessionless, Runnable task)
      throws LabFault {
    Runnable inContext = context.wrap(task);
    if (sessionless || sessionId.isEmpty()) {
      workers.execute(inContext);
      return;
    }
    String key = service + "\n" + sessionId;
    Turn turn = new Turn(inContext);
    boolean[] first = {false};
    boolean[] full = {false};
    queues.compute(
        key,
        (k, q) -> {
          if (q == null) {
            q = new ArrayDeque<>();
            first[0] = true;
          }
          if (q.size() > MAX_WAITING_PER_SESSION) {
            full[0] = true;
          } else {
            q.addLast(turn);
          }
          return q;
        });
    if (full[0]) {
      throw LabFault.of(
          Status.Code.RESOURCE_EXHAUSTED.value(),
          "SESSION_QUEUE_FULL",
          "session " + sessionId + " already has " + MAX_WAITING_PER_SESSION + " messages waiting for its turn",
          Map.of("max_waiting", String.valueOf(MAX_WAITING_PER_SESSION)),
          List.of());
    }
    // A call that ends while it waits (deadline, cancel) gives its place back at once; the
    // running message (the head) leaves when it returns.
    context.addListener(c -> leave(key, turn), Runnable::run);
    if (first[0]) workers.execute(() -> drain(key));
  }

  /** Runs work that needs no turn (a stream after its turn was taken) on a worker. */
  void detach(Context context, Runnable task) {
    workers.execute(context.wrap(task));
  }

  /** Removes a waiting message whose call ended; the head is left to its worker. */
  private void leave(String key, Turn turn) {
    queues.computeIfPresent(
        key,
        (k, q) -> {
          if (q.peekFirst() != turn) q.remove(turn);
          return q;
        });
  }

  /** Runs the session's queue to its end, one message at a time, then forgets it. */
  private void drain(String key) {
    while (true) {
      Turn[] head = {null};
      queues.computeIfPresent(
          key,
          (k, q) -> {
            head[0] = q.peekFirst();
            return q;
          });
      if (head[0] == null) return;
      try {
        head[0].task.run();
      } catch (RuntimeException | Error e) {
        // A task answers its own call; a failure here must not stall the session's queue.
        System.err.println("sb-lab-java: a message of " + key.replace('\n', ' ') + " failed: " + e);
      }
      boolean[] more = {false};
      queues.computeIfPresent(
          key,
          (k, q) -> {
            q.pollFirst();
            more[0] = !q.isEmpty();
            return more[0] ? q : null;
          });
      if (!more[0]) return;
    }
  }

  @Override
  public void close() {
    workers.shutdownNow();
  }
}
