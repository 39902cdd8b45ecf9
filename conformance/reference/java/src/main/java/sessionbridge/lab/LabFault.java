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

  /** Connect code names in gRPC numbering (DESIGN §3). */
  private static final String[] CONNECT_CODES = {
    "ok",
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
  };

  /** The HTTP status of each gRPC code (DESIGN §3). */
  private static final int[] HTTP_STATUS = {
    200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
  };

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

  /** The gRPC code number (google.rpc.Code). */
  public int code() {
    return status.getCode();
  }

  /** The Connect protocol's name of the code, "unknown" outside 1-16 (DESIGN §3). */
  public String connectCode() {
    int c = status.getCode();
    return c >= 1 && c < CONNECT_CODES.length ? CONNECT_CODES[c] : "unknown";
  }

  /** The HTTP status of the code (DESIGN §3). */
  public int httpStatus() {
    int c = status.getCode();
    return c >= 1 && c < HTTP_STATUS.length ? HTTP_STATUS[c] : 500;
  }

  public StatusRuntimeException toException() {
    return StatusProto.toStatusRuntimeException(status);
  }
}
