package sessionbridge.lab;

import com.google.protobuf.Descriptors.MethodDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import com.google.rpc.ErrorDetailsProto;
import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import sessionbridge.conformance.v1.Lab;
import sessionbridge.conformance.v1.Lab.ActRequest;
import sessionbridge.conformance.v1.Lab.Instruction;
import sessionbridge.conformance.v1.Lab.ItemsRequest;
import sessionbridge.conformance.v1.Lab.OpenRequest;
import sessionbridge.lab.LabEngine.Op;

/**
 * One operation of the lab contract as the HTTP and NATS transports name it, read from the
 * contract's descriptors, with its request codecs (binary protobuf, proto3 JSON).
 */
record LabRoute(String service, String method, Op op, Message requestType, boolean streaming) {
  /** Details of google.rpc (ErrorInfo, …) inside Any, readable and printable as JSON. */
  private static final JsonFormat.TypeRegistry TYPES =
      JsonFormat.TypeRegistry.newBuilder().add(ErrorDetailsProto.getDescriptor().getMessageTypes()).build();

  private static final JsonFormat.Parser JSON_IN = JsonFormat.parser().ignoringUnknownFields().usingTypeRegistry(TYPES);
  private static final JsonFormat.Printer JSON_OUT =
      JsonFormat.printer().omittingInsignificantWhitespace().usingTypeRegistry(TYPES);

  private static final Map<String, LabRoute> BY_OPERATION = build();

  /** Every operation of every lab service, by `package.Service/Method`. */
  static Map<String, LabRoute> byOperation() {
    return BY_OPERATION;
  }

  /** PingLabService has no session options: no session is resolved for it. */
  boolean sessionless() {
    return op == Op.PING;
  }

  /** The request's instruction (Open, Act, Peek, Post, Finish, Ping). */
  static Instruction instruction(Message request) {
    if (request instanceof OpenRequest o) return o.getInstruction();
    if (request instanceof ActRequest a) return a.getInstruction();
    return Instruction.getDefaultInstance();
  }

  /** Parses the request, binary or JSON; a malformed one is INVALID_ARGUMENT [S4]. */
  Message decode(byte[] data, boolean json) throws LabFault {
    try {
      if (json) {
        Message.Builder b = requestType.newBuilderForType();
        String text = new String(data, StandardCharsets.UTF_8);
        JSON_IN.merge(text.isBlank() ? "{}" : text, b);
        return b.build();
      }
      return requestType.getParserForType().parseFrom(data);
    } catch (InvalidProtocolBufferException | RuntimeException e) {
      throw LabFault.of(
          Status.Code.INVALID_ARGUMENT,
          "MALFORMED_MESSAGE",
          "the request is not a " + requestType.getDescriptorForType().getName() + ": " + e.getMessage());
    }
  }

  /** Proto3 JSON of a message, on one line. */
  static String json(MessageOrBuilder m) {
    try {
      return JSON_OUT.print(m);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("not printable as JSON: " + e.getMessage(), e);
    }
  }

  private static Map<String, LabRoute> build() {
    Map<String, Message> requestTypes =
        Map.of(
            "OpenRequest", OpenRequest.getDefaultInstance(),
            "ActRequest", ActRequest.getDefaultInstance(),
            "ItemsRequest", ItemsRequest.getDefaultInstance());
    Map<String, LabRoute> out = new HashMap<>();
    for (ServiceDescriptor s : Lab.getDescriptor().getServices()) {
      for (MethodDescriptor m : s.getMethods()) {
        Op op = Op.valueOf(m.getName().toUpperCase(Locale.ROOT));
        Message type = requestTypes.get(m.getInputType().getName());
        if (type == null) throw new IllegalStateException("no request type for " + m.getFullName());
        out.put(
            s.getFullName() + "/" + m.getName(),
            new LabRoute(s.getFullName(), m.getName(), op, type, m.isServerStreaming()));
      }
    }
    return Map.copyOf(out);
  }
}
