"""Faults of the lab contract: one exception type, three wire forms (S14).

A `LabFault` carries a gRPC status code (numbering of google.rpc.Code), a message, a
machine-readable reason and further details. Each transport turns it into its own error
form with `to_status()`: gRPC sends the google.rpc.Status as rich status, HTTP as Connect
error JSON, NATS as the `sb-status-bin` header of docs/nats.md.
"""

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

# The domain of every ErrorInfo this service sends; the bridge's own reasons use its own.
DOMAIN = "sessionbridge.conformance"

# gRPC code number -> Connect code name and HTTP status (DESIGN §3).
CONNECT_CODES = {
    1: ("canceled", 499),
    2: ("unknown", 500),
    3: ("invalid_argument", 400),
    4: ("deadline_exceeded", 504),
    5: ("not_found", 404),
    6: ("already_exists", 409),
    7: ("permission_denied", 403),
    8: ("resource_exhausted", 429),
    9: ("failed_precondition", 400),
    10: ("aborted", 409),
    11: ("out_of_range", 400),
    12: ("unimplemented", 501),
    13: ("internal", 500),
    14: ("unavailable", 503),
    15: ("data_loss", 500),
    16: ("unauthenticated", 401),
}


class LabFault(Exception):
    """An answer that is a fault: code, message, reason, details."""

    def __init__(self, code, message, reason="", details=(), metadata=None):
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.reason = reason
        self.details = list(details)
        self.metadata = dict(metadata or {})

    def to_status(self):
        """The google.rpc.Status: the ErrorInfo with the reason first, then the details."""
        status = status_pb2.Status(code=self.code, message=self.message)
        if self.reason:
            info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
            packed = any_pb2.Any()
            packed.Pack(info)
            status.details.append(packed)
        status.details.extend(self.details)
        return status

    @staticmethod
    def from_status(status):
        """The inverse of to_status(), for answers recorded in the store."""
        details = list(status.details)
        reason, metadata = "", {}
        if details and details[0].Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            details[0].Unpack(info)
            if info.domain == DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
                details = details[1:]
        return LabFault(status.code, status.message, reason, details, metadata)


def not_found(reason, message):
    return LabFault(code_pb2.NOT_FOUND, message, reason)


def invalid_argument(reason, message):
    return LabFault(code_pb2.INVALID_ARGUMENT, message, reason)


def deadline_exceeded():
    return LabFault(code_pb2.DEADLINE_EXCEEDED, "the deadline passed before the work was done", "DEADLINE_EXCEEDED")


def cancelled():
    return LabFault(code_pb2.CANCELLED, "the call was cancelled", "CANCELLED")
