package executors

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// SyncWriter serialises writes to a job log: background steps write to it
// while the foreground step does.
type SyncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewSyncWriter wraps w.
func NewSyncWriter(w io.Writer) *SyncWriter { return &SyncWriter{w: w} }

func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// maxLine bounds what a LineWriter holds back: a process that prints a
// long line without a newline (a progress bar) still reaches the log.
const maxLine = 64 << 10

// LineWriter passes one step's output to the job log as it comes, a line
// at a time: each write to the log ends with a newline, so that lines of
// steps running at once (a background step's, the foreground step's) are
// never cut into each other. It also watches for silence, for
// no_output_timeout.
//
// A step's stdout and stderr go to one LineWriter through one pipe, as a
// terminal shows them: a line printed half on each arrives whole, which
// the masking writer downstream needs to recognise a secret in it. Both
// executors give a step's processes one pipe for the two.
type LineWriter struct {
	out io.Writer

	mu       sync.Mutex
	buf      []byte // the unfinished last line
	timer    *time.Timer
	timeout  time.Duration
	last     time.Time // of the last write, while watched
	onSilent func()
	silent   bool
}

// NewLineWriter returns a LineWriter writing to out, which should be
// safe for concurrent use when other writers share it (a SyncWriter).
func NewLineWriter(out io.Writer) *LineWriter {
	return &LineWriter{out: out}
}

// Watch calls onSilent, once and from another goroutine, when nothing is
// written for timeout. Start it once the step's process exists, so that
// onSilent has something to stop.
func (lw *LineWriter) Watch(timeout time.Duration, onSilent func()) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.timeout, lw.onSilent, lw.last = timeout, onSilent, time.Now()
	lw.timer = time.AfterFunc(timeout, lw.check)
}

// check runs when the timer fires. The timer is not reset on every write,
// which fast output would pay for; it sleeps again for the time left.
func (lw *LineWriter) check() {
	lw.mu.Lock()
	if lw.timer == nil || lw.silent {
		lw.mu.Unlock()
		return
	}
	if left := lw.timeout - time.Since(lw.last); left > 0 {
		lw.timer.Reset(left)
		lw.mu.Unlock()
		return
	}
	lw.silent = true
	lw.mu.Unlock()
	lw.onSilent()
}

// Write passes on every complete line of p and holds back the rest, up to
// maxLine. It never fails: a log that cannot take output must not stop
// the step (whoever owns the log sees its error).
func (lw *LineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.timer != nil {
		lw.last = time.Now()
	}
	n := len(p)
	if len(lw.buf) > 0 {
		// End the held back line with p's first newline.
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			lw.hold(p)
			return n, nil
		}
		lw.buf = append(lw.buf, p[:i+1]...)
		_, _ = lw.out.Write(lw.buf)
		lw.buf, p = lw.buf[:0], p[i+1:]
	}
	// Whole lines pass without a copy.
	if end := bytes.LastIndexByte(p, '\n') + 1; end > 0 {
		_, _ = lw.out.Write(p[:end])
		p = p[end:]
	}
	lw.hold(p)
	return n, nil
}

// hold keeps p, the start of a line, until its end comes, unless that
// makes more than maxLine.
func (lw *LineWriter) hold(p []byte) {
	lw.buf = append(lw.buf, p...)
	if len(lw.buf) >= maxLine {
		_, _ = lw.out.Write(lw.buf)
		lw.buf = lw.buf[:0]
	}
}

// Close stops the watch and writes what is left of an unfinished last
// line, ended with a newline, so that what follows in the log starts on a
// line of its own. It reports whether the step went silent for too long.
func (lw *LineWriter) Close() (silent bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.timer != nil {
		lw.timer.Stop()
		lw.timer = nil // and check, should it be running, does nothing
	}
	if len(lw.buf) > 0 {
		_, _ = lw.out.Write(append(lw.buf, '\n'))
		lw.buf = nil
	}
	return lw.silent
}
