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
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
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
    CallFacts facts =
        new CallFacts(call.getMethodDescriptor().getFullMethodName(), "grpc", pairs(headers), deviation);
    ServerCall<Q, R> replying =
        new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
          private boolean headersSent;

          @Override
          public void sendHeaders(Metadata h) {
            headersSent = true;
            put(h, facts.replyHeaders());
            super.sendHeaders(h);
          }

          @Override
          public void close(Status status, Metadata trailers) {
            if (!headersSent && !facts.replyHeaders().isEmpty()) sendHeaders(new Metadata());
            put(trailers, facts.replyTrailers());
            super.close(status, trailers);
          }
        };
    return Contexts.interceptCall(Context.current().withValue(CallFacts.KEY, facts), replying, headers, next);
  }

  /** The request metadata as (name, value) pairs; binary values as base64, as HTTP carries them. */
  private static List<CallFacts.Header> pairs(Metadata headers) {
    List<CallFacts.Header> out = new ArrayList<>();
    for (String name : headers.keys()) {
      if (name.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
        for (byte[] v : headers.getAll(Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER))) {
          out.add(new CallFacts.Header(name, Base64.getEncoder().encodeToString(v)));
        }
      } else {
        for (String v : headers.getAll(Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER))) {
          out.add(new CallFacts.Header(name, v));
        }
      }
    }
    return out;
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
