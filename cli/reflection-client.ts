import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { type Client, Metadata } from "@grpc/grpc-js";

const METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/** A bridge's server reflection, asked one symbol at a time. */
export interface ReflectionClient {
  /**
   * The serialized FileDescriptorProtos of the file declaring `symbol` and everything it
   * imports (what the bridge's reflection returns); rejects when the bridge does not know it.
   */
  filesContaining(symbol: string): Promise<Uint8Array[]>;
}

/**
 * grpc.reflection.v1 over an existing channel. The few fields needed are encoded by
 * number (grpc/reflection/v1/reflection.proto), as the bridge's own reflection service
 * does: no generated code for one request and one response.
 */
export function createReflectionClient(client: Client, deadlineMs: number): ReflectionClient {
  return {
    filesContaining(symbol) {
      return new Promise((resolve, reject) => {
        const call = client.makeBidiStreamRequest(
          METHOD,
          (request: string) => Buffer.from(new BinaryWriter().uint32(34).string(request).finish()),
          (bytes: Buffer) => decodeResponse(bytes),
          new Metadata(),
          { deadline: Date.now() + deadlineMs },
        );
        let answered = false;
        call.on("data", (response: ReflectionAnswer) => {
          answered = true;
          call.end();
          if (response.error !== undefined) reject(new Error(response.error));
          else resolve(response.files);
        });
        call.on("error", (error: Error) => {
          if (!answered) reject(error);
        });
        call.on("end", () => {
          if (!answered) reject(new Error(`no reflection answer for ${symbol}`));
        });
        call.write(symbol);
      });
    },
  };
}

interface ReflectionAnswer {
  readonly files: Uint8Array[];
  readonly error?: string;
}

/** ServerReflectionResponse: field 4 file_descriptor_response, field 7 error_response. */
function decodeResponse(bytes: Uint8Array): ReflectionAnswer {
  const reader = new BinaryReader(bytes);
  const files: Uint8Array[] = [];
  let error: string | undefined;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 4 && wireType === 2) {
      const inner = new BinaryReader(reader.bytes());
      while (inner.pos < inner.len) {
        const [f, w] = inner.tag();
        if (f === 1 && w === 2) files.push(inner.bytes());
        else inner.skip(w);
      }
    } else if (field === 7 && wireType === 2) {
      const inner = new BinaryReader(reader.bytes());
      error = "reflection error";
      while (inner.pos < inner.len) {
        const [f, w] = inner.tag();
        if (f === 2 && w === 2) error = inner.string();
        else inner.skip(w);
      }
    } else {
      reader.skip(wireType);
    }
  }
  return error === undefined ? { files } : { files, error };
}
