import { type DescEnum, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import type { ContractSet, OperationContract } from "../../bridge/contracts/contract.js";

type Json = Record<string, unknown>;

/**
 * The OpenAPI 3.1 description of what the HTTP listener serves, generated from the
 * contracts: every operation as Connect unary POST (GET too for shared operations, the
 * Connect streaming form for server streaming) with its proto3 JSON schemas, the session
 * headers (S1, S7, S8, S15), the Connect error body (S14), and the sessions API.
 */
export function openApiDocument(contracts: ContractSet, version: string): Json {
  const schemas: Json = {
    "connect.Error": {
      type: "object",
      description: "A Connect error: the code in lower snake case, the message, google.protobuf.Any details",
      required: ["code"],
      properties: {
        code: { type: "string", enum: CODES },
        message: { type: "string" },
        details: {
          type: "array",
          items: {
            type: "object",
            required: ["type", "value"],
            properties: {
              type: {
                type: "string",
                description: "fully-qualified protobuf type, e.g. google.rpc.ErrorInfo",
              },
              value: { type: "string", contentEncoding: "base64" },
              debug: {},
            },
          },
        },
      },
    },
  };
  const pending: DescMessage[] = [];
  const ref = (message: DescMessage): Json => {
    if (!(message.typeName in schemas)) {
      schemas[message.typeName] = {};
      pending.push(message);
    }
    return { $ref: `#/components/schemas/${message.typeName}` };
  };
  const paths: Json = {};
  for (const op of contracts.operations.values()) {
    if (op.requestStream) continue;
    const request = contracts.registry.getMessage(op.requestType);
    const response = contracts.registry.getMessage(op.responseType);
    if (request === undefined || response === undefined) continue;
    paths[op.path] = pathItem(op, ref(request), ref(response));
  }
  Object.assign(paths, sessionPaths(contracts, ref));
  while (pending.length > 0) {
    const message = pending.pop() as DescMessage;
    schemas[message.typeName] = messageSchema(message, ref);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "sessionbridge",
      version,
      description:
        "Every operation of the configured contracts over the Connect protocol, with sessions (see docs/http.md).",
    },
    paths,
    components: { schemas, parameters: PARAMETERS, responses: { error: ERROR_RESPONSE } },
  };
}

const CODES = [
  "canceled",
  "cancelled",
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
];

const header = (name: string, description: string, schema: Json = { type: "string" }): Json => ({
  name,
  in: "header",
  required: false,
  description,
  schema,
});

const PARAMETERS: Json = {
  sessionId: header("Sb-Session-Id", "Resume a session by its id (S1)"),
  seq: header("Sb-Seq", "The client's number for this message within its session (S7)", {
    type: "string",
    pattern: "^[1-9][0-9]{0,15}$",
  }),
  idempotencyKey: header(
    "Idempotency-Key",
    "Retries with the same key and payload return the recorded outcome (S8)",
  ),
  traceparent: header("traceparent", "W3C trace context (S15)"),
  protocolVersion: header("Connect-Protocol-Version", "The Connect protocol version", {
    type: "string",
    enum: ["1"],
  }),
  timeout: header("Connect-Timeout-Ms", "The deadline, in milliseconds from now (S15)", {
    type: "string",
    pattern: "^[0-9]{1,10}$",
  }),
};

const COMMON_PARAMETERS = Object.keys(PARAMETERS).map((name) => ({
  $ref: `#/components/parameters/${name}`,
}));

const SESSION_HEADERS: Json = {
  "sb-session-id": { description: "The session the call reached (S1)", schema: { type: "string" } },
  "sb-message-id": { description: "The bridge's id of the request message", schema: { type: "string" } },
};

const ERROR_RESPONSE: Json = {
  description: "A fault: the HTTP status of the code table and the Connect error body (S14)",
  headers: SESSION_HEADERS,
  content: { "application/json": { schema: { $ref: "#/components/schemas/connect.Error" } } },
};

function pathItem(op: OperationContract, request: Json, response: Json): Json {
  const summary = `${op.service}.${op.name}${op.startsSession ? " (starts a session)" : ""}${op.endsSession ? " (ends the session)" : ""}`;
  const operationId = `${op.service}.${op.name}`;
  if (op.responseStream) {
    return {
      post: {
        operationId,
        summary: `${summary}, server streaming`,
        parameters: COMMON_PARAMETERS,
        requestBody: {
          required: true,
          content: {
            "application/connect+json": {
              schema: { type: "string", description: "one enveloped JSON message" },
            },
            "application/connect+proto": { schema: { type: "string", format: "binary" } },
          },
        },
        responses: {
          "200": {
            description: `Enveloped ${op.responseType} messages, then the end-stream message`,
            headers: SESSION_HEADERS,
            content: {
              "application/connect+json": { schema: { type: "string" } },
              "application/connect+proto": { schema: { type: "string", format: "binary" } },
            },
          },
          default: { $ref: "#/components/responses/error" },
        },
      },
    };
  }
  const ok = {
    description: op.responseType,
    headers: SESSION_HEADERS,
    content: {
      "application/json": { schema: response },
      "application/proto": { schema: { type: "string", format: "binary" } },
    },
  };
  const item: Json = {
    post: {
      operationId,
      summary,
      parameters: COMMON_PARAMETERS,
      requestBody: {
        required: true,
        content: {
          "application/json": { schema: request },
          "application/proto": { schema: { type: "string", format: "binary" } },
        },
      },
      responses: { "200": ok, default: { $ref: "#/components/responses/error" } },
    },
  };
  if (op.access === "shared") {
    item.get = {
      operationId: `${operationId}.get`,
      summary: `${summary}, read-only`,
      parameters: [
        ...COMMON_PARAMETERS,
        {
          name: "encoding",
          in: "query",
          required: true,
          schema: { type: "string", enum: ["json", "proto"] },
        },
        { name: "message", in: "query", required: true, schema: { type: "string" } },
        { name: "base64", in: "query", required: false, schema: { type: "string", enum: ["1"] } },
        {
          name: "compression",
          in: "query",
          required: false,
          schema: { type: "string", enum: ["identity", "gzip"] },
        },
        { name: "connect", in: "query", required: false, schema: { type: "string", enum: ["v1"] } },
      ],
      responses: { "200": ok, default: { $ref: "#/components/responses/error" } },
    };
  }
  return item;
}

function sessionPaths(contracts: ContractSet, ref: (m: DescMessage) => Json): Json {
  const message = (name: string): Json => {
    const found = contracts.registry.getMessage(name);
    return found === undefined ? { type: "object" } : ref(found);
  };
  const json = (schema: Json, description: string): Json => ({
    description,
    content: { "application/json": { schema } },
  });
  const id = {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$" },
  };
  return {
    "/sessions": {
      get: {
        operationId: "sessions.list",
        summary: "The caller's sessions, a page at a time",
        parameters: [
          { name: "service", in: "query", schema: { type: "string" } },
          { name: "state", in: "query", schema: { type: "string", enum: ["active", "closed", "expired"] } },
          { name: "pageSize", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000 } },
          { name: "pageToken", in: "query", schema: { type: "string" } },
        ],
        responses: {
          "200": json(message("sessionbridge.v1.ListResponse"), "A page of sessions"),
          default: { $ref: "#/components/responses/error" },
        },
      },
    },
    "/sessions/{id}": {
      get: {
        operationId: "sessions.get",
        parameters: [id],
        responses: {
          "200": json(message("sessionbridge.v1.GetResponse"), "The session"),
          default: { $ref: "#/components/responses/error" },
        },
      },
      delete: {
        operationId: "sessions.close",
        summary: "Closes the session (idempotent, S12)",
        parameters: [id],
        responses: {
          "200": json(message("sessionbridge.v1.CloseResponse"), "The session as closed"),
          default: { $ref: "#/components/responses/error" },
        },
      },
    },
    "/sessions/{id}/events": {
      get: {
        operationId: "sessions.events",
        summary: "The journal as Server-Sent Events, live; Last-Event-ID resumes (S9)",
        parameters: [id, header("Last-Event-ID", "The journal index seen last")],
        responses: {
          "200": {
            description: "`entry` events (id = journal index, data = HistoryResponse JSON), then `end`",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          default: { $ref: "#/components/responses/error" },
        },
      },
    },
  };
}

/** The proto3 JSON mapping of a message as a JSON Schema (OpenAPI 3.1 uses JSON Schema 2020-12). */
function messageSchema(message: DescMessage, ref: (m: DescMessage) => Json): Json {
  const wellKnown = WELL_KNOWN[message.typeName];
  if (wellKnown !== undefined) return wellKnown;
  const properties: Json = {};
  for (const field of message.fields) properties[field.jsonName] = fieldSchema(field, ref);
  return { type: "object", description: message.typeName, properties };
}

function fieldSchema(field: DescField, ref: (m: DescMessage) => Json): Json {
  switch (field.fieldKind) {
    case "scalar":
      return scalarSchema(field.scalar);
    case "enum":
      return enumSchema(field.enum);
    case "message":
      return ref(field.message);
    case "list":
      return {
        type: "array",
        items:
          field.listKind === "scalar"
            ? scalarSchema(field.scalar)
            : field.listKind === "enum"
              ? enumSchema(field.enum)
              : ref(field.message),
      };
    case "map":
      return {
        type: "object",
        additionalProperties:
          field.mapKind === "scalar"
            ? scalarSchema(field.scalar)
            : field.mapKind === "enum"
              ? enumSchema(field.enum)
              : ref(field.message),
      };
  }
}

function enumSchema(desc: DescEnum): Json {
  return { anyOf: [{ type: "string", enum: desc.values.map((v) => v.name) }, { type: "integer" }] };
}

function scalarSchema(type: ScalarType): Json {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      // NaN and the infinities are strings in proto3 JSON.
      return { anyOf: [{ type: "number" }, { type: "string", enum: ["NaN", "Infinity", "-Infinity"] }] };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      // 64-bit integers are decimal strings in proto3 JSON; numbers are accepted on input.
      return { type: ["string", "integer"], pattern: "^-?[0-9]+$" };
    default:
      return { type: "integer" };
  }
}

const WELL_KNOWN: Readonly<Record<string, Json>> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" },
  "google.protobuf.Empty": { type: "object", additionalProperties: false },
  "google.protobuf.Any": { type: "object", required: ["@type"], properties: { "@type": { type: "string" } } },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64" },
  "google.protobuf.Int32Value": { type: "integer" },
  "google.protobuf.UInt32Value": { type: "integer" },
  "google.protobuf.Int64Value": { type: ["string", "integer"] },
  "google.protobuf.UInt64Value": { type: ["string", "integer"] },
  "google.protobuf.FloatValue": { anyOf: [{ type: "number" }, { type: "string" }] },
  "google.protobuf.DoubleValue": { anyOf: [{ type: "number" }, { type: "string" }] },
};
