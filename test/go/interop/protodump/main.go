// Command protodump writes the .proto sources of gRPC's interop contract
// (grpc.testing.TestService and its messages) as compiled into grpc-go, so the bridge
// can load the contract without a copy of another project's files in this repository.
package main

import (
	"fmt"
	"os"

	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/desc/protoprint"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: protodump <output directory>")
		os.Exit(2)
	}
	file, err := desc.WrapFile(testpb.File_grpc_testing_test_proto)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	files := []*desc.FileDescriptor{file}
	files = append(files, file.GetDependencies()...)
	printer := protoprint.Printer{}
	if err := printer.PrintProtosToFileSystem(files, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
