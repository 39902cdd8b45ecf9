package sessionbridge.lab;

import io.grpc.Context;
import io.grpc.Status;
import io.nats.client.Connection;
import io.nats.client.Dispatcher;
import io.nats.client.Message;
import io.nats.client.Subscription;
import io.nats.client.impl.Headers;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One server stream over NATS in the framing of docs/nats.md "Streaming".
 *
 * <p>The requester's reply subject receives {@code head} (with {@code sb-stream-control}, the
 * subject of this stream's acks and cancels), one {@code msg} per item numbered by {@code
 * sb-stream-seq}, and one {@code end} with the trailers or the fault headers [S14]. At most
 * {@code window} messages are sent and not yet acknowledged: the worker producing items
 * waits while the window is full, so a slow reader slows the stream instead of growing a
 * buffer. A window that stays full for {@link #ACK_TIMEOUT_MS} gives the stream up
 * (RESOURCE_EXHAUSTED). A cancel from the requester cancels the call's context [S15]; its
 * deadline is the call's.
 */
final class NatsStream {
  static final int DEFAULT_WINDOW = 64;
  static final int MAX_WINDOW = 1024;
  /** How long a full window waits for an ack before the stream is given up (docs/nats.md). */
  static final long ACK_TIMEOUT_MS = 30_000;
  /** Waits are sliced so a cancel or the deadline is seen promptly. */
  private static final long WAIT_SLICE_MS = 50;

  private final Connection connection;
  private final Dispatcher control;
  private final String reply;
  private final int window;
  private final Context.CancellableContext context;
  private final String controlSubject;
  private Subscription subscription;
  private long sent;
  private long acked;
  private LabFault givenUp;

  NatsStream(Connection connection, Dispatcher control, String reply, int window, Context.CancellableContext context) {
    this.connection = connection;
    this.control = control;
    this.reply = reply;
    this.window = window;
    this.context = context;
    this.controlSubject = connection.createInbox();
  }

  /** sb-stream-window: 1 and up, clamped to MAX_WINDOW; DEFAULT_WINDOW when absent. */
  static int requestedWindow(String text) throws LabFault {
    if (text == null) return DEFAULT_WINDOW;
    if (text.isEmpty() || text.length() > 5 || !text.chars().allMatch(c -> c >= '0' && c <= '9')
        || Integer.parseInt(text) < 1) {
      throw LabFault.of(
          Status.Code.INVALID_ARGUMENT, "INVALID_REQUEST", "sb-stream-window must be a positive integer, got " + text);
    }
    return Math.min(Integer.parseInt(text), MAX_WINDOW);
  }

  /** Subscribes to the control subject, then sends the head with the session facts [S1]. */
  void open(Headers head) {
    subscription = control.subscribe(controlSubject, this::onControl);
    head.put("sb-stream", "head");
    head.put("sb-stream-control", controlSubject);
    connection.publish(reply, head, new byte[0]);
  }

  /** The fault the requester caused (cancel, no acks), if any. */
  synchronized LabFault fault() {
    return givenUp;
  }

  /** True when the stream must stop: the requester cancelled, stopped acking, or the call ended. */
  synchronized boolean over() {
    return givenUp != null || context.isCancelled();
  }

  /** One msg (from a worker); waits while the window is full. False when the stream is over. */
  boolean send(byte[] payload) {
    long seq;
    synchronized (this) {
      long fullSince = 0;
      while (sent - acked >= window) {
        if (over()) return false;
        long now = System.nanoTime();
        if (fullSince == 0) fullSince = now;
        if (now - fullSince >= TimeUnit.MILLISECONDS.toNanos(ACK_TIMEOUT_MS)) {
          givenUp =
              LabFault.of(
                  Status.Code.RESOURCE_EXHAUSTED.value(),
                  "STREAM_NOT_ACKED",
                  "the requester acked nothing for " + ACK_TIMEOUT_MS + " ms with " + window
                      + " messages unacked; the stream is given up",
                  Map.of("window", Integer.toString(window)),
                  List.of());
          // The call behind the stream stops too.
          context.cancel(null);
          return false;
        }
        try {
          wait(WAIT_SLICE_MS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return false;
        }
      }
      if (over()) return false;
      sent += 1;
      seq = sent;
    }
    Headers h = new Headers();
    h.put("sb-stream", "msg");
    h.put("sb-stream-seq", Long.toString(seq));
    connection.publish(reply, h, payload);
    return true;
  }

  /** The end: success (no fault headers) or the fault headers [S14]. Sent once. */
  void end(Headers h) {
    if (subscription != null) control.unsubscribe(subscription);
    h.put("sb-stream", "end");
    try {
      connection.publish(reply, h, new byte[0]);
    } catch (RuntimeException e) {
      // The connection is gone: nobody can be told, and nothing is held.
      System.err.println("sb-lab-java: nats stream end: " + e);
    }
  }

  private void onControl(Message msg) {
    Headers h = msg.getHeaders();
    if (h == null) return;
    if (h.containsKey("sb-stream-cancel")) {
      synchronized (this) {
        if (givenUp == null) givenUp = LabFault.of(Status.Code.CANCELLED, "CANCELLED", "the requester cancelled the stream");
        notifyAll();
      }
      // Cuts short whatever the call waits for: its turn, a pause, the window [S15].
      context.cancel(null);
      return;
    }
    String text = h.getFirst("sb-stream-ack");
    if (text == null || text.isEmpty() || text.length() > 15 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
      return;
    }
    synchronized (this) {
      // Acks only move forward and never past what was sent: a stray ack is harmless.
      long count = Math.min(Long.parseLong(text), sent);
      if (count > acked) {
        acked = count;
        notifyAll();
      }
    }
  }
}
