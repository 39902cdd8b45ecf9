package lab

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAct measures one Act on a live session through the lab's core, in memory and
// with the durable journal (an fsync per batch of concurrent calls). Numbers, not claims:
// `go test -bench . -run '^$' ./lab`.
func BenchmarkAct(b *testing.B) {
	for _, durable := range []bool{false, true} {
		b.Run(fmt.Sprintf("durable=%v", durable), func(b *testing.B) {
			dir := ""
			if durable {
				dir = b.TempDir()
			}
			l, err := Open(Options{StateDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				session := fmt.Sprintf("s-%p", pb)
				l.Unary(ctx, call("Open", facts{session: session}), open())
				for pb.Next() {
					if out := l.Unary(ctx, call("Act", facts{session: session}), act("x")); out.Fault != nil {
						b.Error(out.Fault)
						return
					}
				}
			})
		})
	}
}
