package lab

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func appendRaw(t *testing.T, dir, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func granted(tk *ticket) bool {
	select {
	case <-tk.ready:
		return true
	default:
		return false
	}
}

func TestTurnsAreFirstComeFirstServed(t *testing.T) { // S6
	q := newTurns()
	first := q.enqueue("s", false)
	peek := q.enqueue("s", true)
	second := q.enqueue("s", false)
	other := q.enqueue("t", false)
	if !granted(first) || granted(peek) || granted(second) || !granted(other) {
		t.Fatal("only the first exclusive call of each session may run")
	}
	first.release()
	if !granted(peek) || granted(second) {
		t.Fatal("the shared call runs next; the exclusive one waits for it")
	}
	peek2 := q.enqueue("s", true)
	if granted(peek2) {
		t.Fatal("a shared call never overtakes an exclusive one that arrived first")
	}
	peek.release()
	if !granted(second) {
		t.Fatal("the exclusive call runs once the shared one is done")
	}
	second.release()
	if !granted(peek2) {
		t.Fatal("the last shared call runs")
	}
	peek2.release()
	other.release()
	if len(q.queues) != 0 {
		t.Fatalf("queues left behind: %d", len(q.queues))
	}
}

func TestAWaiterThatGivesUpLeavesTheQueue(t *testing.T) {
	q := newTurns()
	holder := q.enqueue("s", false)
	waiter := q.enqueue("s", false)
	next := q.enqueue("s", false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waiter.wait(ctx); err == nil {
		t.Fatal("a cancelled wait must fail")
	}
	waiter.release()
	holder.release()
	if !granted(next) {
		t.Fatal("the call behind the one that gave up must run")
	}
	next.release()
	if len(q.queues) != 0 {
		t.Fatal("queue left behind")
	}
}
