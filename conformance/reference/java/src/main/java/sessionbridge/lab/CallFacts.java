package sessionbridge.lab;

import io.grpc.Context;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * What the service observed of one call, taken from its headers as the bridge sends them
 * (docs/sessions.md) whatever the transport, plus the headers and trailers the handler asks
 * to send back [S15].
 */
public final class CallFacts {
  static final Context.Key<CallFacts> KEY = Context.key("sb-lab-call-facts");

  /** One request header as it arrived; binary ({@code -bin}) values as base64 text. */
  record Header(String name, String value) {}

  /** Headers of the transport, not of the caller (lab.proto, Observed.metadata). */
  private static final Set<String> TRANSPORT_HEADERS =
      Set.of(
          "content-type",
          "content-length",
          "content-encoding",
          "accept",
          "accept-encoding",
          "accept-language",
          "te",
          "user-agent",
          "host",
          "connection",
          "keep-alive",
          "transfer-encoding",
          "upgrade",
          "expect",
          "traceparent",
          "sec-fetch-mode");

  private static final List<String> TRANSPORT_PREFIXES = List.of(":", "grpc-", "connect-", "sb-", "nats-");

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
  /** The deviation DROP_METADATA: custom metadata is not seen and nothing is sent back. */
  private final boolean dropMetadata;

  private volatile Map<String, String> replyHeaders = Map.of();
  private volatile Map<String, String> replyTrailers = Map.of();

  CallFacts(String operation, String transport, List<Header> headers, Deviation deviation) {
    this.operation = operation;
    this.transport = transport;
    this.sessionId = first(headers, "sb-session-id");
    this.messageId = first(headers, "sb-message-id");
    this.principal = first(headers, "sb-principal");
    this.traceparent = first(headers, "traceparent");
    String rawSeq = first(headers, "sb-seq");
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
    // The deviation DROP_METADATA is checked here only: custom metadata never reaches the
    // handler and reply headers are never sent (the faulty service breaks S15).
    this.dropMetadata = deviation == Deviation.DROP_METADATA;
    this.metadata = dropMetadata ? Map.of() : custom(headers);
  }

  static CallFacts current() {
    CallFacts facts = KEY.get();
    if (facts == null) throw new IllegalStateException("no call facts: the transport did not attach them");
    return facts;
  }

  /** Instruction.reply_headers and reply_trailers, sent back by the transport [S15]. */
  void reply(Map<String, String> headers, Map<String, String> trailers) {
    if (dropMetadata) return;
    replyHeaders = Map.copyOf(headers);
    replyTrailers = Map.copyOf(trailers);
  }

  Map<String, String> replyHeaders() {
    return replyHeaders;
  }

  Map<String, String> replyTrailers() {
    return replyTrailers;
  }

  private static String first(List<Header> headers, String name) {
    for (Header h : headers) {
      if (h.name().equalsIgnoreCase(name)) return h.value();
    }
    return "";
  }

  /**
   * Every custom request header: names lower-cased, repeated ones joined with ", " as HTTP
   * joins them, {@code -bin} values as standard padded base64 (lab.proto, S15).
   */
  private static Map<String, String> custom(List<Header> headers) {
    Map<String, String> out = new TreeMap<>();
    for (Header h : headers) {
      String name = h.name().toLowerCase(Locale.ROOT);
      if (isTransportHeader(name)) continue;
      String value = name.endsWith("-bin") ? standardBase64(h.value()) : h.value();
      out.merge(name, value, (a, b) -> a + ", " + b);
    }
    return out;
  }

  /** HTTP and NATS carry binary values as base64, padded or not, standard or URL-safe. */
  private static String standardBase64(String text) {
    String trimmed = text.trim();
    try {
      byte[] bytes =
          trimmed.indexOf('-') >= 0 || trimmed.indexOf('_') >= 0
              ? Base64.getUrlDecoder().decode(trimmed)
              : Base64.getDecoder().decode(trimmed);
      return Base64.getEncoder().encodeToString(bytes);
    } catch (IllegalArgumentException notBase64) {
      return text;
    }
  }

  static boolean isTransportHeader(String name) {
    if (TRANSPORT_HEADERS.contains(name)) return true;
    for (String prefix : TRANSPORT_PREFIXES) {
      if (name.startsWith(prefix)) return true;
    }
    return false;
  }
}
