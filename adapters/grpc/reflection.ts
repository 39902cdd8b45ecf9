import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import type protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/**
 * gRPC server reflection, v1 and v1alpha (grpcurl uses either), for every service the
 * bridge exposes: the contracts' services and the bridge's own. The descriptors come
 * from the parsed definitions, encoded once at start-up.
 */
export function addReflection(server: Server, root: protobuf.Root): void {
  const set = (root as unknown as { toDescriptor(syntax: string): { file: unknown[] } }).toDescriptor(
    "proto3",
  );
  const files = set.file.map((file) =>
    Buffer.from(descriptor.FileDescriptorProto.encode(file as protobuf.Message).finish()),
  );
  // The reflection package reads only fileDescriptorProtos from its definition.
  const definition = { descriptors: { fileDescriptorProtos: files } } as unknown as PackageDefinition;
  new ReflectionService(definition).addToServer(server);
}
