package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// maxEntryBytes bounds one journal line read back at start: an entry holds at most one
// request's effects, and requests are far smaller.
const maxEntryBytes = 64 << 20

// entry is one line of the journal: what a message changed, written and fsynced before
// the message is answered (S9, S10).
type entry struct {
	// Kind: "open" (a session starts), "apply" (a message's effects and outcome),
	// "end" (a session expired) or "delivery" (a message id reached the service).
	Kind      string   `json:"k"`
	Service   string   `json:"s,omitempty"`
	Session   string   `json:"i,omitempty"`
	AtMs      int64    `json:"t,omitempty"`
	Seq       uint64   `json:"q,omitempty"`
	MessageID string   `json:"m,omitempty"`
	Append    []string `json:"a,omitempty"`
	// End is "closed" or "expired" when the entry ends the session.
	End     string   `json:"e,omitempty"`
	Outcome *outcome `json:"o,omitempty"`
}

// outcome is a recorded answer, replayed for a duplicate sequence number or message id
// (S7, S10): the reply message or the fault, as binary protobuf, and the headers sent.
type outcome struct {
	Reply    []byte            `json:"r,omitempty"`
	Fault    []byte            `json:"f,omitempty"`
	Headers  map[string]string `json:"h,omitempty"`
	Trailers map[string]string `json:"x,omitempty"`
}

// journal is an append-only file of entries under the state directory. Appends from
// concurrent calls share one write and one fsync (group commit); each caller returns
// only once its entry is durable.
type journal struct {
	file *os.File

	mu      sync.Mutex
	pending [][]byte
	waiters []chan error
	writing bool
	closed  bool
}

// openJournal reads every complete entry of dir/journal.jsonl, cuts off a torn last
// line (a write that a crash interrupted, never acknowledged), and opens the file for
// appending.
func openJournal(dir string, replay func(entry) error) (*journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "journal.jsonl")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	good, err := readEntries(file, replay)
	if err != nil {
		file.Close()
		return nil, err
	}
	if err := file.Truncate(good); err != nil {
		file.Close()
		return nil, err
	}
	if _, err := file.Seek(good, io.SeekStart); err != nil {
		file.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		file.Close()
		return nil, err
	}
	return &journal{file: file}, nil
}

// readEntries replays complete lines and returns the offset after the last good one.
func readEntries(file *os.File, replay func(entry) error) (int64, error) {
	reader := bufio.NewReaderSize(file, 64<<10)
	var offset int64
	for {
		line, err := readLine(reader)
		if errors.Is(err, io.EOF) || errors.Is(err, errTornLine) {
			return offset, nil
		}
		if err != nil {
			return 0, err
		}
		var e entry
		if json.Unmarshal(line, &e) != nil {
			// A line that does not parse can only be the torn tail of a crashed write.
			return offset, nil
		}
		if err := replay(e); err != nil {
			return 0, err
		}
		offset += int64(len(line)) + 1
	}
}

var errTornLine = errors.New("torn journal line")

// readLine reads one '\n'-terminated line of at most maxEntryBytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	for {
		chunk, err := r.ReadSlice('\n')
		if buf.Len()+len(chunk) > maxEntryBytes {
			return nil, fmt.Errorf("journal line longer than %d bytes", maxEntryBytes)
		}
		buf.Write(chunk)
		switch {
		case err == nil:
			return buf.Bytes()[:buf.Len()-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if buf.Len() == 0 {
				return nil, io.EOF
			}
			return nil, errTornLine
		default:
			return nil, err
		}
	}
}

// append writes e and returns once it is durable.
func (j *journal) append(e entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	done := make(chan error, 1)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errors.New("journal closed")
	}
	j.pending = append(j.pending, line)
	j.waiters = append(j.waiters, done)
	if !j.writing {
		j.writing = true
		go j.flush()
	}
	j.mu.Unlock()
	return <-done
}

// flush writes whatever is pending, one write and one fsync per batch, until nothing is.
func (j *journal) flush() {
	for {
		j.mu.Lock()
		if len(j.pending) == 0 {
			j.writing = false
			j.mu.Unlock()
			return
		}
		batch, waiters := j.pending, j.waiters
		j.pending, j.waiters = nil, nil
		j.mu.Unlock()

		err := j.writeBatch(batch)
		for _, w := range waiters {
			w <- err
		}
	}
}

func (j *journal) writeBatch(batch [][]byte) error {
	if _, err := j.file.Write(bytes.Join(batch, nil)); err != nil {
		return err
	}
	return j.file.Sync()
}

func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	return j.file.Close()
}

// nextIncarnation counts service starts on one state directory (Observed.incarnation),
// written atomically: a temporary file, fsync, rename, fsync of the directory.
func nextIncarnation(dir string) (uint64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	path := filepath.Join(dir, "incarnation")
	var previous uint64
	if text, err := os.ReadFile(path); err == nil {
		previous, _ = strconv.ParseUint(strings.TrimSpace(string(text)), 10, 64)
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	next := previous + 1
	tmp := path + ".tmp"
	file, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	if _, err := file.WriteString(strconv.FormatUint(next, 10) + "\n"); err != nil {
		file.Close()
		return 0, err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return 0, err
	}
	if err := file.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	return next, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
