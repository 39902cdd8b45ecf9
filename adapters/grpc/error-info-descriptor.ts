import descriptor from "protobufjs/ext/descriptor/index.js";

/**
 * A descriptor of google/rpc/error_details.proto holding google.rpc.ErrorInfo, served by
 * reflection so that clients such as grpcurl can print the reason of every bridge fault.
 */
export function errorInfoDescriptor(): Buffer {
  const string = (name: string, number: number) => ({ name, number, label: 1, type: 9, jsonName: name });
  const file = descriptor.FileDescriptorProto.fromObject({
    name: "google/rpc/error_details.proto",
    package: "google.rpc",
    syntax: "proto3",
    messageType: [
      {
        name: "ErrorInfo",
        field: [
          string("reason", 1),
          string("domain", 2),
          {
            name: "metadata",
            number: 3,
            label: 3,
            type: 11,
            typeName: ".google.rpc.ErrorInfo.MetadataEntry",
            jsonName: "metadata",
          },
        ],
        nestedType: [
          {
            name: "MetadataEntry",
            field: [string("key", 1), string("value", 2)],
            options: { mapEntry: true },
          },
        ],
      },
    ],
  });
  return Buffer.from(descriptor.FileDescriptorProto.encode(file).finish());
}
