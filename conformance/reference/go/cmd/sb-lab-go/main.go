// sb-lab-go is the Go reference service of the conformance suite: the lab contract
// (proto/sessionbridge/conformance/v1/lab.proto) over gRPC, HTTP (Connect) and NATS,
// started by the harness protocol of harness.proto.
package main

import (
	"os"

	"sessionbridge.dev/conformance/lab-go/lab"
)

func main() {
	os.Exit(lab.Main(lab.Conformant{}))
}
