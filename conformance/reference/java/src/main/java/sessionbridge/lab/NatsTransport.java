package sessionbridge.lab;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.rpc.ErrorInfo;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import io.nats.client.Connection;
import io.nats.client.Dispatcher;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.impl.Headers;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.LabItem;

/**
 * The lab services over NATS request-reply, as docs/nats.md describes a process.
 *
 * <p>Each operation is served on {@code <prefix>.<package.Service>.<Method>}. The payload is
 * binary protobuf, or proto3 JSON with {@code Content-Type: application/json}; session facts
 * are headers, the deadline is {@code sb-timeout-ms} [S15]. A fault is an empty reply with
 * {@code Nats-Service-Error-Code} (the HTTP number), {@code Nats-Service-Error} (the message
 * on one line), {@code sb-status-bin} (base64 google.rpc.Status: exact code, reason and
 * details) and {@code sb-reason} [S14]. Reply headers and trailers both travel as reply
 * headers: NATS has no trailers. {@code LabService.Items} streams in the framing of
 * docs/nats.md "Streaming" ({@link NatsStream}): head, numbered msgs within the requester's
 * window of acks, end.
 *
 * <p>One dispatcher thread receives every subject's messages in arrival order and hands
 * them to {@link SessionTurns} there, so a session's messages keep their order [S6].
 */
final class NatsTransport implements AutoCloseable {
  /** How long the first connection is tried before the service gives up starting. */
  private static final long CONNECT_FOR_SECONDS = 30;

  private final Connection connection;
  private final ScheduledExecutorService timer;
  /** Receives the acks and cancels of every stream, apart from the calls' dispatcher. */
  private final Dispatcher control;

  private NatsTransport(Connection connection, ScheduledExecutorService timer) {
    this.connection = connection;
    this.timer = timer;
    this.control = connection.createDispatcher();
  }

  /** Connects and subscribes; returns once every subject is served. */
  static NatsTransport start(String url, String prefix, LabEngine engine, SessionTurns turns, Deviation deviation)
      throws IOException, InterruptedException {
    Options options =
        new Options.Builder()
            .server(url)
            .connectionName("sb-lab-java")
            .maxReconnects(-1)
            // A busy machine may take longer than the client's 2 s default to answer.
            .connectionTimeout(Duration.ofSeconds(10))
            .errorListener(new io.nats.client.ErrorListener() {})
            .build();
    Connection nc = connect(options);
    ScheduledExecutorService timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "sb-lab-nats-deadlines");
              t.setDaemon(true);
              return t;
            });
    NatsTransport transport = new NatsTransport(nc, timer);
    Map<String, LabRoute> bySubject = new HashMap<>();
    for (LabRoute route : LabRoute.byOperation().values()) {
      bySubject.put(prefix + "." + route.service() + "." + route.method(), route);
    }
    Dispatcher dispatcher =
        nc.createDispatcher(
            msg -> {
              LabRoute route = bySubject.get(msg.getSubject());
              if (route != null) transport.arrive(route, msg, engine, turns, deviation);
            });
    for (String subject : bySubject.keySet()) dispatcher.subscribe(subject);
    try {
      nc.flush(Duration.ofSeconds(10));
    } catch (java.util.concurrent.TimeoutException e) {
      throw new IOException("NATS did not confirm the subscriptions: " + e.getMessage(), e);
    }
    return transport;
  }

  /**
   * The first connection, tried again for a while: a restarted service (kill -9 cases) must
   * come back even when the server is slow to accept at that moment.
   */
  private static Connection connect(Options options) throws IOException, InterruptedException {
    long giveUpAt = System.nanoTime() + TimeUnit.SECONDS.toNanos(CONNECT_FOR_SECONDS);
    while (true) {
      try {
        return Nats.connect(options);
      } catch (IOException e) {
        if (System.nanoTime() > giveUpAt) throw e;
        System.err.println("sb-lab-java: NATS not reached yet, trying again: " + e.getMessage());
        Thread.sleep(250);
      }
    }
  }

  /** Runs on the dispatcher thread, in arrival order: fixes the session's order [S6]. */
  private void arrive(
      LabRoute route, io.nats.client.Message msg, LabEngine engine, SessionTurns turns, Deviation deviation) {
    Headers in = msg.getHeaders();
    List<CallFacts.Header> headers = new ArrayList<>();
    if (in != null) {
      for (String name : in.keySet()) {
        List<String> values = in.get(name);
        if (values == null) continue;
        for (String v : values) headers.add(new CallFacts.Header(name.toLowerCase(Locale.ROOT), v));
      }
    }
    String replyTo = msg.getReplyTo();
    boolean json = "application/json".equals(mediaType(header(in, "content-type")));
    CallFacts facts = new CallFacts(route.service() + "/" + route.method(), "nats", headers, deviation);
    Context.CancellableContext context;
    Message request;
    try {
      Long timeoutMs = timeoutMs(header(in, "sb-timeout-ms"));
      Context base = Context.ROOT.withValue(CallFacts.KEY, facts);
      context =
          timeoutMs == null
              ? base.withCancellation()
              : base.withDeadline(Deadline.after(timeoutMs, TimeUnit.MILLISECONDS), timer);
      if (route.streaming()) {
        stream(route, msg, facts, context, json, engine, turns);
        return;
      }
      request = route.decode(msg.getData() == null ? new byte[0] : msg.getData(), json);
    } catch (LabFault f) {
      reply(replyTo, new byte[0], faultHeaders(f, new Headers()));
      return;
    }
    Message decoded = request;
    try {
      dispatch(route, facts, context, decoded, replyTo, json, engine, turns);
    } catch (LabFault f) {
      // The session's queue is full [S6]: refused at once, nothing queued.
      context.cancel(null);
      reply(replyTo, new byte[0], faultHeaders(f, new Headers()));
    }
  }

  private void dispatch(
      LabRoute route,
      CallFacts facts,
      Context.CancellableContext context,
      Message decoded,
      String replyTo,
      boolean json,
      LabEngine engine,
      SessionTurns turns)
      throws LabFault {
    turns.dispatch(
        context,
        route.service(),
        facts.sessionId,
        route.sessionless(),
        () -> {
          try {
            Message answer = engine.unary(route.service(), route.op(), LabRoute.instruction(decoded));
            Headers out = replyHeaders(facts);
            if (json) {
              out.put("Content-Type", "application/json");
              reply(replyTo, LabRoute.json(answer).getBytes(StandardCharsets.UTF_8), out);
            } else {
              reply(replyTo, answer.toByteArray(), out);
            }
          } catch (LabFault f) {
            reply(replyTo, new byte[0], faultHeaders(f, replyHeaders(facts)));
          } catch (RuntimeException e) {
            reply(replyTo, new byte[0], faultHeaders(LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e)), new Headers()));
          } finally {
            context.cancel(null);
          }
        });
  }

  /**
   * Accepts a stream on the dispatcher thread, in arrival order: a request refused before
   * that (a bad window, a malformed message) is answered by an end alone; otherwise the head
   * goes out and the stream takes its session's turn [S6] for its checks, then streams
   * outside it. The context is cancelled when the stream ends, on every path.
   */
  private void stream(
      LabRoute route,
      io.nats.client.Message msg,
      CallFacts facts,
      Context.CancellableContext context,
      boolean json,
      LabEngine engine,
      SessionTurns turns) {
    String replyTo = msg.getReplyTo();
    ItemsRequest request;
    int window;
    try {
      window = NatsStream.requestedWindow(header(msg.getHeaders(), "sb-stream-window"));
      request = (ItemsRequest) route.decode(msg.getData() == null ? new byte[0] : msg.getData(), json);
    } catch (LabFault f) {
      Headers end = faultHeaders(f, new Headers());
      end.put("sb-stream", "end");
      reply(replyTo, new byte[0], end);
      context.cancel(null);
      return;
    }
    if (replyTo == null || replyTo.isEmpty()) {
      context.cancel(null);
      return;
    }
    NatsStream stream = new NatsStream(connection, control, replyTo, window, context);
    Headers head = new Headers();
    head.put("Content-Type", json ? "application/json" : "application/proto");
    if (!facts.sessionId.isEmpty()) head.put("sb-session-id", facts.sessionId);
    if (!facts.messageId.isEmpty()) head.put("sb-message-id", facts.messageId);
    try {
      stream.open(head);
    } catch (RuntimeException e) {
      System.err.println("sb-lab-java: nats stream head: " + e);
      context.cancel(null);
      return;
    }
    LabEngine.ItemSink sink =
        new LabEngine.ItemSink() {
          @Override
          public boolean cancelled() {
            return stream.over();
          }

          @Override
          public void send(LabItem item) {
            stream.send(json ? LabRoute.json(item).getBytes(StandardCharsets.UTF_8) : item.toByteArray());
          }
        };
    try {
      turns.dispatch(
          context,
          route.service(),
          facts.sessionId,
          false,
          () -> {
            LabEngine.ItemsStart start;
            try {
              start = engine.startItems(route.service(), request);
            } catch (LabFault f) {
              endStream(stream, context, f);
              return;
            } catch (RuntimeException e) {
              endStream(stream, context, LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e)));
              return;
            }
            // The stream applies nothing: it leaves the session's turn to the next message.
            turns.detach(
                context,
                () -> {
                  LabFault fault = null;
                  try {
                    engine.streamItems(start, sink);
                  } catch (LabFault f) {
                    fault = f;
                  } catch (RuntimeException e) {
                    fault = LabFault.of(Status.Code.INTERNAL, "INTERNAL", String.valueOf(e));
                  }
                  endStream(stream, context, fault);
                });
          });
    } catch (LabFault f) {
      // The session's queue is full [S6].
      endStream(stream, context, f);
    }
  }

  /** Sends the end (the requester's own fault first: a cancel, no acks) and ends the call. */
  private static void endStream(NatsStream stream, Context.CancellableContext context, LabFault fault) {
    LabFault cause = stream.fault() != null ? stream.fault() : fault;
    if (cause == null && context.isCancelled()) {
      Deadline d = context.getDeadline();
      cause =
          d != null && d.isExpired()
              ? LabFault.of(Status.Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the deadline passed during the stream")
              : LabFault.of(Status.Code.CANCELLED, "CANCELLED", "the call was cancelled");
    }
    stream.end(cause == null ? new Headers() : faultHeaders(cause, new Headers()));
    context.cancel(null);
  }

  private void reply(String replyTo, byte[] data, Headers headers) {
    if (replyTo == null || replyTo.isEmpty()) return;
    try {
      connection.publish(replyTo, headers, data);
    } catch (RuntimeException e) {
      // The connection is gone: the caller times out.
      System.err.println("sb-lab-java: nats reply: " + e);
    }
  }

  /** Instruction.reply_headers and reply_trailers, both as reply headers [S15]. */
  private static Headers replyHeaders(CallFacts facts) {
    Headers out = new Headers();
    for (Map<String, String> values : List.of(facts.replyHeaders(), facts.replyTrailers())) {
      for (Map.Entry<String, String> e : values.entrySet()) {
        try {
          out.put(e.getKey(), e.getValue());
        } catch (IllegalArgumentException invalid) {
          // A header NATS cannot carry is left out rather than failing the call.
        }
      }
    }
    return out;
  }

  /** The error headers of docs/nats.md [S14]. */
  private static Headers faultHeaders(LabFault f, Headers out) {
    com.google.rpc.Status status = f.status();
    // NATS header values are printable ASCII: anything else becomes '?' here; the exact
    // message travels in sb-status-bin.
    String oneLine = status.getMessage().replaceAll("[\\r\\n]+", " ").replaceAll("[^\\x20-\\x7E]", "?").trim();
    out.put("Nats-Service-Error-Code", Integer.toString(f.httpStatus()));
    out.put("Nats-Service-Error", oneLine.isEmpty() ? f.connectCode() : oneLine);
    out.put("sb-status-bin", Base64.getEncoder().encodeToString(status.toByteArray()));
    String reason = reason(status);
    if (!reason.isEmpty()) out.put("sb-reason", reason);
    return out;
  }

  private static String reason(com.google.rpc.Status status) {
    if (status.getDetailsCount() == 0) return "";
    Any first = status.getDetails(0);
    if (!first.is(ErrorInfo.class)) return "";
    try {
      ErrorInfo info = first.unpack(ErrorInfo.class);
      return info.getDomain().equals(LabFault.DOMAIN) ? info.getReason() : "";
    } catch (InvalidProtocolBufferException e) {
      return "";
    }
  }

  private static String header(Headers headers, String name) {
    if (headers == null) return null;
    for (String key : headers.keySet()) {
      if (key.equalsIgnoreCase(name)) return headers.getFirst(key);
    }
    return null;
  }

  private static String mediaType(String contentType) {
    if (contentType == null) return "";
    int semi = contentType.indexOf(';');
    return (semi >= 0 ? contentType.substring(0, semi) : contentType).trim().toLowerCase(Locale.ROOT);
  }

  private static Long timeoutMs(String text) throws LabFault {
    if (text == null) return null;
    if (text.isEmpty() || text.length() > 10 || !text.chars().allMatch(c -> c >= '0' && c <= '9')
        || Long.parseLong(text) < 1) {
      throw LabFault.of(
          Status.Code.INVALID_ARGUMENT, "INVALID_TIMEOUT", "sb-timeout-ms must be a positive integer, got " + text);
    }
    return Long.parseLong(text);
  }

  @Override
  public void close() {
    try {
      connection.drain(Duration.ofSeconds(2)).get(3, TimeUnit.SECONDS);
    } catch (Exception e) {
      // Shutting down anyway.
    }
    timer.shutdownNow();
  }
}
