import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/**
 * gRPC server reflection, v1 and v1alpha (grpcurl uses either), over the given file
 * descriptors (see reflection-root.ts).
 */
export function addReflection(server: Server, files: readonly Buffer[]): void {
  // The reflection package reads only fileDescriptorProtos from its definition.
  const definition = { descriptors: { fileDescriptorProtos: [...files] } } as unknown as PackageDefinition;
  new ReflectionService(definition).addToServer(server);
}
