package local

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// syncWriter serialises writes to the job log: background steps write
// while foreground steps do, and each write is a whole line.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// maxLine bounds what a step can hold back: a process that prints a long
// line without a newline (a progress bar) still reaches the log.
const maxLine = 64 << 10

// lineWriter passes a step's output to the job log a line at a time, as
// it comes, and watches for silence: when nothing came for timeout it
// calls onSilent once. It is written to by one goroutine (os/exec copies
// stdout and stderr through one pipe when both are the same writer).
type lineWriter struct {
	out     io.Writer
	timeout time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer
	silent bool
}

func newLineWriter(out io.Writer) *lineWriter {
	return &lineWriter{out: out}
}

// watch starts the silence watchdog. It is started only once the process
// exists, so that onSilent always has a process to stop.
func (lw *lineWriter) watch(timeout time.Duration, onSilent func()) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.timeout = timeout
	lw.timer = time.AfterFunc(timeout, func() {
		lw.mu.Lock()
		lw.silent = true
		lw.mu.Unlock()
		onSilent()
	})
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.timer != nil && !lw.silent {
		lw.timer.Reset(lw.timeout)
	}
	lw.buf = append(lw.buf, p...)
	end := bytes.LastIndexByte(lw.buf, '\n') + 1
	if end == 0 && len(lw.buf) >= maxLine {
		end = len(lw.buf)
	}
	if end > 0 {
		// A log that fails to take output must not kill the step; the
		// engine sees the log's own error where it wraps the writer.
		_, _ = lw.out.Write(lw.buf[:end])
		lw.buf = append(lw.buf[:0], lw.buf[end:]...)
	}
	return len(p), nil
}

// Close stops the watchdog and writes what is left of an unfinished last
// line, ended, so that the next step's output starts on its own line. It
// reports whether the step went silent for too long.
func (lw *lineWriter) Close() (silent bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.timer != nil {
		lw.timer.Stop()
	}
	if len(lw.buf) > 0 {
		_, _ = lw.out.Write(append(lw.buf, '\n'))
		lw.buf = nil
	}
	return lw.silent
}
