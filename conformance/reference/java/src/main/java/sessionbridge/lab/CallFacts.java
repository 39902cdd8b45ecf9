package sessionbridge.lab;

import io.grpc.Context;
import io.grpc.Metadata;
import java.util.Base64;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * What the service observed of one call, taken from its metadata as the bridge sends it
 * (docs/sessions.md), plus the headers and trailers the handler asks to send back [S15].
 */
public final class CallFacts {
  static final Context.Key<CallFacts> KEY = Context.key("sb-lab-call-facts");

  final String operation;
  final String transport;
  final String sessionId;
  /** {@code sb-seq}, or null when absent. */
  final Long seq;
  /** True when {@code sb-seq} was present but not a positive decimal number. */
  final boolean badSeq;
  final String messageId;
  final String principal;
  final String traceparent;
  final Map<String, String> metadata;
  final long receivedNanos = System.nanoTime();

  volatile Map<String, String> replyHeaders = Map.of();
  volatile Map<String, String> replyTrailers = Map.of();

  CallFacts(String operation, String transport, Metadata headers, boolean dropCustom) {
    this.operation = operation;
    this.transport = transport;
    this.sessionId = text(headers, "sb-session-id");
    this.messageId = text(headers, "sb-message-id");
    this.principal = text(headers, "sb-principal");
    this.traceparent = text(headers, "traceparent");
    String rawSeq = text(headers, "sb-seq");
    Long parsed = null;
    boolean bad = false;
    if (!rawSeq.isEmpty()) {
      try {
        parsed = Long.parseUnsignedLong(rawSeq.trim());
        bad = parsed == 0;
      } catch (NumberFormatException e) {
        bad = true;
      }
    }
    this.seq = bad ? null : parsed;
    this.badSeq = bad;
    this.metadata = dropCustom ? Map.of() : custom(headers);
  }

  static CallFacts current() {
    CallFacts facts = KEY.get();
    if (facts == null) throw new IllegalStateException("no call facts: the interceptor is not installed");
    return facts;
  }

  private static String text(Metadata headers, String name) {
    String v = headers.get(Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER));
    return v == null ? "" : v;
  }

  /** Every custom request header; transport headers, sb-* and traceparent excluded (lab.proto). */
  private static Map<String, String> custom(Metadata headers) {
    Map<String, String> out = new TreeMap<>();
    for (String raw : headers.keys()) {
      String name = raw.toLowerCase(Locale.ROOT);
      if (isTransportHeader(name)) continue;
      StringBuilder value = new StringBuilder();
      if (name.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
        for (byte[] v : headers.getAll(Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER))) {
          if (value.length() > 0) value.append(", ");
          value.append(Base64.getEncoder().encodeToString(v));
        }
      } else {
        for (String v : headers.getAll(Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER))) {
          if (value.length() > 0) value.append(", ");
          value.append(v);
        }
      }
      out.put(name, value.toString());
    }
    return out;
  }

  static boolean isTransportHeader(String name) {
    return name.startsWith(":")
        || name.startsWith("grpc-")
        || name.startsWith("connect-")
        || name.startsWith("sb-")
        || name.equals("traceparent")
        || name.equals("content-type")
        || name.equals("te")
        || name.equals("user-agent")
        || name.equals("accept-encoding")
        || name.equals("content-length")
        || name.equals("host")
        || name.equals("connection");
  }
}
