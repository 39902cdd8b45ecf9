package sessionbridge.lab;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.List;
import java.util.Map;

/**
 * A fault in the one fault model of the contract: a gRPC code, a message, a reason as a
 * google.rpc.ErrorInfo (domain sessionbridge.conformance) before any other details [S14].
 */
public final class LabFault extends Exception {
  public static final String DOMAIN = "sessionbridge.conformance";

  private final com.google.rpc.Status status;

  private LabFault(com.google.rpc.Status status) {
    super(status.getMessage(), null, false, false);
    this.status = status;
  }

  public static LabFault of(Status.Code code, String reason, String message) {
    return of(code.value(), reason, message, Map.of(), List.of());
  }

  public static LabFault of(
      int code, String reason, String message, Map<String, String> info, List<Any> details) {
    com.google.rpc.Status.Builder b = com.google.rpc.Status.newBuilder().setCode(code).setMessage(message);
    if (!reason.isEmpty()) {
      b.addDetails(
          Any.pack(ErrorInfo.newBuilder().setReason(reason).setDomain(DOMAIN).putAllMetadata(info).build()));
    }
    b.addAllDetails(details);
    return new LabFault(b.build());
  }

  /** A recorded fault, answered again on a replay (S7, S10). */
  public static LabFault fromStatus(com.google.rpc.Status status) {
    return new LabFault(status);
  }

  public com.google.rpc.Status status() {
    return status;
  }

  public StatusRuntimeException toException() {
    return StatusProto.toStatusRuntimeException(status);
  }
}
