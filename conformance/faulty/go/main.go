// sb-lab-go-faulty is the Go reference service with one deliberate deviation, chosen by
// `--break <name>` (breaks.go), for proving that the conformance suite catches it.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"

	"sessionbridge.dev/conformance/lab-go/lab"
)

func main() {
	name := flag.String("break", "", "the deviation to run with: "+names())
	flag.Parse()
	b, ok := breaks[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "sb-lab-go-faulty: --break must be one of %s\n", names())
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "sb-lab-go-faulty: breaking %s (%s)\n", b.rule, *name)
	os.Exit(lab.Main(b.deviation))
}

func names() string {
	var out []string
	for n := range breaks {
		out = append(out, n)
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}
