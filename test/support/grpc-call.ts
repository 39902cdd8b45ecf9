import * as grpc from "@grpc/grpc-js";

export interface UnaryOutcome<T> {
  readonly response: T;
  readonly headers: grpc.Metadata;
  readonly trailers: grpc.Metadata;
}

export interface CallFailure extends grpc.ServiceError {
  /** Response headers received before the failure, if any. */
  readonly headers: grpc.Metadata | undefined;
}

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/** A unary call through a real grpc-js client, with headers and trailers; failures reject with CallFailure. */
export function unaryCall<T>(
  client: grpc.Client,
  method: string,
  request: object,
  metadata: Record<string, string> = {},
  options: grpc.CallOptions = {},
): Promise<UnaryOutcome<T>> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => {
    let headers: grpc.Metadata | undefined;
    let response: unknown;
    let failure: grpc.ServiceError | null = null;
    const call = fn.call(client, request, md, options, (error, value) => {
      failure = error;
      response = value;
    });
    call.on("metadata", (h: grpc.Metadata) => {
      headers = h;
    });
    call.on("status", (status: grpc.StatusObject) => {
      if (failure !== null) {
        reject(Object.assign(failure, { headers }));
        return;
      }
      resolve({
        response: response as T,
        headers: headers ?? new grpc.Metadata(),
        trailers: status.metadata,
      });
    });
  });
}

/** Runs a call that must fail and returns its error. */
export async function failure(promise: Promise<unknown>): Promise<CallFailure> {
  try {
    await promise;
  } catch (error) {
    return error as CallFailure;
  }
  throw new Error("the call succeeded but was expected to fail");
}

export function header(md: grpc.Metadata | undefined, key: string): string | undefined {
  const value = md?.get(key)[0];
  return value === undefined ? undefined : String(value);
}
