package sessionbridge.lab;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;

/**
 * Captures the call's metadata into {@link CallFacts} and sends the headers and trailers a
 * handler asked for (Instruction.reply_headers / reply_trailers) [S15].
 */
final class CallFactsInterceptor implements ServerInterceptor {
  private final Deviation deviation;

  CallFactsInterceptor(Deviation deviation) {
    this.deviation = deviation;
  }

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    // The deviation DROP_METADATA is checked here only: custom metadata never reaches the
    // handler and reply headers are never sent (the faulty service breaks S15).
    boolean drop = deviation == Deviation.DROP_METADATA;
    CallFacts facts = new CallFacts(call.getMethodDescriptor().getFullMethodName(), "grpc", headers, drop);
    ServerCall<Q, R> replying =
        new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
          private boolean headersSent;

          @Override
          public void sendHeaders(Metadata h) {
            headersSent = true;
            if (!drop) put(h, facts.replyHeaders);
            super.sendHeaders(h);
          }

          @Override
          public void close(Status status, Metadata trailers) {
            if (!headersSent && !drop && !facts.replyHeaders.isEmpty()) sendHeaders(new Metadata());
            if (!drop) put(trailers, facts.replyTrailers);
            super.close(status, trailers);
          }
        };
    return Contexts.interceptCall(Context.current().withValue(CallFacts.KEY, facts), replying, headers, next);
  }

  private static void put(Metadata target, Map<String, String> values) {
    for (Map.Entry<String, String> e : values.entrySet()) {
      String name = e.getKey().toLowerCase(java.util.Locale.ROOT);
      try {
        if (name.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
          // Binary values travel as base64 in the instruction, like Observed.metadata.
          byte[] bytes;
          try {
            bytes = Base64.getDecoder().decode(e.getValue());
          } catch (IllegalArgumentException notBase64) {
            bytes = e.getValue().getBytes(StandardCharsets.UTF_8);
          }
          target.put(Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER), bytes);
        } else {
          target.put(Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER), e.getValue());
        }
      } catch (IllegalArgumentException invalidName) {
        // A header name gRPC cannot carry is left out rather than failing the call.
      }
    }
  }
}
