package lab

import (
	"context"
	"sync"
)

// turns gives each session a first-come, first-served queue (S6): exclusive operations
// run one at a time in arrival order; shared ones run beside each other but never
// overtake an exclusive one that arrived first. A place is taken when a call arrives
// (enqueue, never blocking, so a transport can take it in arrival order) and waited
// for later (ticket.wait).
type turns struct {
	mu     sync.Mutex
	queues map[string]*turnQueue
}

type turnQueue struct {
	key string
	// running is the number of shared holders, or -1 while an exclusive one runs.
	running int
	waiting []*ticket
	// tickets counts tickets not yet released; the queue is dropped at zero.
	tickets int
}

type ticket struct {
	owner    *turns
	queue    *turnQueue
	shared   bool
	ready    chan struct{}
	granted  bool
	released bool
}

func newTurns() *turns { return &turns{queues: map[string]*turnQueue{}} }

// maxTicketsPerSession bounds the calls of one session that hold or wait for a turn:
// each waiting call is a goroutine and a request in memory, and a client that pipelines
// without end must not grow them without bound. Beyond it a call is refused at once.
const maxTicketsPerSession = 1024

// enqueue takes a place in the queue of key, without waiting; nil when the queue holds
// maxTicketsPerSession tickets already.
func (t *turns) enqueue(key string, shared bool) *ticket {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queues[key]
	if q == nil {
		q = &turnQueue{key: key}
		t.queues[key] = q
	}
	if q.tickets >= maxTicketsPerSession {
		return nil
	}
	tk := &ticket{owner: t, queue: q, shared: shared, ready: make(chan struct{})}
	q.tickets++
	q.waiting = append(q.waiting, tk)
	q.grant()
	return tk
}

// grant lets the head of the queue run while it can; called with the lock held.
func (q *turnQueue) grant() {
	for len(q.waiting) > 0 {
		head := q.waiting[0]
		if head.shared {
			if q.running < 0 {
				return
			}
			q.running++
		} else {
			if q.running != 0 {
				return
			}
			q.running = -1
		}
		q.waiting = q.waiting[1:]
		head.granted = true
		close(head.ready)
	}
}

// wait blocks until the ticket's turn comes or ctx ends.
func (tk *ticket) wait(ctx context.Context) error {
	select {
	case <-tk.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the turn back, or leaves the queue if the turn never came. Idempotent.
func (tk *ticket) release() {
	t := tk.owner
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.released {
		return
	}
	tk.released = true
	q := tk.queue
	if tk.granted {
		if tk.shared {
			q.running--
		} else {
			q.running = 0
		}
	} else {
		for i, w := range q.waiting {
			if w == tk {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				break
			}
		}
	}
	q.grant()
	q.tickets--
	if q.tickets == 0 {
		delete(t.queues, q.key)
	}
}
