package tasks

import (
	"bytes"
	"sync"
)

// tailBuffer is an io.Writer that keeps only the last limit bytes written,
// so that a chatty child cannot grow our memory without bound while the
// end of its output, where errors usually are, survives.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

func newTailBuffer(limit int) *tailBuffer {
	return &tailBuffer{limit: limit}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.total += int64(n)
	if len(p) >= t.limit {
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if len(t.buf)+len(p) > 2*t.limit {
		// Compacting only once the buffer holds 2*limit bytes moves each
		// byte O(1) times on average, however small the writes are.
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// tail returns the kept bytes and how many were dropped before them. When
// bytes were dropped, the kept text starts at a line boundary if there is
// one, so no half line opens the log.
func (t *tailBuffer) tail() (kept []byte, dropped int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept = t.buf
	if len(kept) > t.limit {
		kept = kept[len(kept)-t.limit:]
	}
	dropped = t.total - int64(len(kept))
	if dropped > 0 {
		if i := bytes.IndexByte(kept, '\n'); i >= 0 && i < len(kept)-1 {
			kept = kept[i+1:]
			dropped += int64(i + 1)
		}
	}
	return bytes.Clone(kept), dropped
}

// lastLines returns at most n lines, and at most maxBytes bytes, from the
// end of b, for quoting stderr in an error message.
func lastLines(b []byte, n, maxBytes int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				b = b[i+1:]
				break
			}
		}
	}
	return string(b)
}
