import { createRequire } from "node:module";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import { fixturePath } from "../../support/repo-root.js";

const reflectionDir = path.join(
  path.dirname(createRequire(import.meta.url).resolve("@grpc/reflection/package.json")),
  "build/proto",
);

function reflectionClient(version: "v1" | "v1alpha", address: string): grpc.Client {
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [reflectionDir],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const ctor = pkg.grpc.reflection[version]?.ServerReflection;
  if (ctor === undefined) throw new Error(`no reflection ${version}`);
  return new ctor(address, grpc.credentials.createInsecure());
}

/** One request on the reflection stream, one response back. */
function ask(client: grpc.Client, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const call = (
      client as unknown as {
        ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>>;
      }
    ).ServerReflectionInfo();
    call.on("data", (response) => {
      resolve(response);
      call.end();
    });
    call.on("error", reject);
    call.write(request);
  });
}

/** The file descriptors of a reflection answer, decoded. */
async function filesOf(client: grpc.Client, request: object): Promise<FileDescriptorProto[]> {
  const response = await ask(client, request);
  const protos = (response.file_descriptor_response as { file_descriptor_proto: Buffer[] } | undefined)
    ?.file_descriptor_proto;
  if (protos === undefined) expect.fail(`no files in ${JSON.stringify(response)}`);
  return protos.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/**
 * Server reflection, both versions grpcurl and other tools use: the bridge lists every
 * service it serves and returns protoc-shaped file descriptors (real file names,
 * dependencies, fully qualified types, map entries named <Field>Entry).
 */
describe("gRPC server reflection", () => {
  let h: LabHarness;
  before(async () => {
    h = await startLabHarness("memory");
  });
  after(async () => {
    await h.close();
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: lists the contract services, the SessionService and Health`, async () => {
      const client = reflectionClient(version, h.address);
      try {
        const response = await ask(client, { list_services: "" });
        const services = (response.list_services_response as { service: { name: string }[] }).service.map(
          (s) => s.name,
        );
        expect(services).to.include.members([
          "test.lab.v1.Counter",
          "test.lab.v1.Plain",
          "sessionbridge.v1.SessionService",
          "grpc.health.v1.Health",
        ]);
      } finally {
        client.close();
      }
    });

    it(`${version}: describes a service with the files it needs`, async () => {
      const client = reflectionClient(version, h.address);
      try {
        const files = await filesOf(client, { file_containing_symbol: "test.lab.v1.Counter" });
        const lab = files.find((f) => f.name === "test/lab/v1/lab.proto");
        expect(files[0]?.name).to.equal("test/lab/v1/lab.proto");
        expect(lab?.package).to.equal("test.lab.v1");
        expect(lab?.sourceCodeInfo).to.equal(undefined);
        expect(lab?.dependency).to.include("google/protobuf/empty.proto");
        expect(files.map((f) => f.name)).to.include("google/protobuf/empty.proto");
        const counter = lab?.service?.find((s) => s.name === "Counter");
        const watch = counter?.method.find((m) => m.name === "Watch");
        expect(watch).to.deep.include({
          inputType: ".test.lab.v1.Op",
          outputType: ".test.lab.v1.Result",
          serverStreaming: true,
        });
        const fire = counter?.method.find((m) => m.name === "Fire");
        expect(fire?.outputType).to.equal(".google.protobuf.Empty");
        const result = lab?.messageType?.find((m) => m.name === "Result");
        expect(result?.field?.find((f) => f.name === "metadata")?.typeName).to.equal(
          ".test.lab.v1.Result.MetadataEntry",
        );
        expect(result?.nestedType?.find((n) => n.name === "MetadataEntry")?.options?.mapEntry).to.equal(true);
      } finally {
        client.close();
      }
    });

    it(`${version}: describes the bridge's own services and google.rpc.ErrorInfo`, async () => {
      const client = reflectionClient(version, h.address);
      try {
        const health = await filesOf(client, { file_containing_symbol: "grpc.health.v1.Health" });
        expect(health[0]?.name).to.equal("grpc/health/v1/health.proto");
        expect(health[0]?.service[0]?.method.map((m) => m.name)).to.deep.equal(["Check", "List", "Watch"]);
        const errors = await filesOf(client, { file_containing_symbol: "google.rpc.ErrorInfo" });
        expect(errors[0]?.name).to.equal("google/rpc/error_details.proto");
        expect(errors[0]?.messageType[0]?.field.map((f) => `${f.name}=${f.number}`)).to.deep.equal([
          "reason=1",
          "domain=2",
          "metadata=3",
        ]);
        const session = await filesOf(client, { file_containing_symbol: "sessionbridge.v1.SessionService" });
        expect(session.map((f) => f.name)).to.include("sessionbridge/v1/session.proto");
        const options = await filesOf(client, {
          file_containing_extension: {
            containing_type: "google.protobuf.MethodOptions",
            extension_number: 51730,
          },
        });
        expect(options[0]?.name).to.equal("sessionbridge/v1/options.proto");
        expect(options.map((f) => f.name)).to.include("google/protobuf/descriptor.proto");
      } finally {
        client.close();
      }
    });
  }
});

/** A configuration that exposes one of the three services its contract file declares. */
describe("a bridge serving a subset of its contracts", () => {
  let runtime: BridgeRuntime;
  before(async () => {
    const setup = loadBridgeSetup({
      file: fixturePath("config/setup-subset.yaml"),
      overrides: { grpc: "127.0.0.1:0", store: "memory" },
    });
    runtime = await startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
  });
  after(async () => {
    await runtime.stop(1000);
  });

  it("lists only the served services and answers UNIMPLEMENTED for the others", async () => {
    const reflection = reflectionClient("v1", runtime.grpc.address);
    const raw = new grpc.Client(runtime.grpc.address, grpc.credentials.createInsecure());
    try {
      const response = await ask(reflection, { list_services: "" });
      const services = (response.list_services_response as { service: { name: string }[] }).service.map(
        (s) => s.name,
      );
      expect(services).to.include("fixtures.modalities.v1.Plain");
      expect(services).to.not.include.members(["fixtures.modalities.v1.Queue"]);
      expect(services).to.not.include.members(["fixtures.modalities.v1.Singleton"]);
      const code = await new Promise<number>((resolve) => {
        raw.makeUnaryRequest(
          "/fixtures.modalities.v1.Queue/Begin",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (error) => resolve(error?.code ?? grpc.status.OK),
        );
      });
      expect(code).to.equal(grpc.status.UNIMPLEMENTED);
    } finally {
      reflection.close();
      raw.close();
    }
  });
});
