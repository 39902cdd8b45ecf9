/**
 * .proto files the bridge serves besides the contracts and its own proto/ directory, so
 * that reflection describes everything a client meets on the wire: the standard gRPC
 * health service, and google.rpc.ErrorInfo, which carries the reason of every fault
 * (S14). They are compiled with the contracts, as the last import path: a contract that
 * brings its own copy of either file keeps it (protoc's first-match rule).
 *
 * These are the declarations of grpc/health/v1/health.proto and of ErrorInfo in
 * google/rpc/error_details.proto, with the same names, numbers and packages, so that
 * every client decodes them with its own generated types.
 */
export const HEALTH_PROTO = "grpc/health/v1/health.proto";
export const ERROR_DETAILS_PROTO = "google/rpc/error_details.proto";
export const SESSION_PROTO = "sessionbridge/v1/session.proto";

const HEALTH = `syntax = "proto3";

package grpc.health.v1;

message HealthCheckRequest {
  string service = 1;
}

message HealthCheckResponse {
  enum ServingStatus {
    UNKNOWN = 0;
    SERVING = 1;
    NOT_SERVING = 2;
    SERVICE_UNKNOWN = 3;
  }
  ServingStatus status = 1;
}

message HealthListRequest {}

message HealthListResponse {
  map<string, HealthCheckResponse> statuses = 1;
}

service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc List(HealthListRequest) returns (HealthListResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
`;

const ERROR_DETAILS = `syntax = "proto3";

package google.rpc;

message ErrorInfo {
  string reason = 1;
  string domain = 2;
  map<string, string> metadata = 3;
}
`;

/** By import name: the files compiled when no import path holds a file of that name. */
export const SERVED_PROTOS: ReadonlyMap<string, string> = new Map([
  [HEALTH_PROTO, HEALTH],
  [ERROR_DETAILS_PROTO, ERROR_DETAILS],
]);
