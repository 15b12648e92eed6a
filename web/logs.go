package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// A job's log reaches the page as Server-Sent Events: each event is a
// piece of the log as HTML (ansi.go) whose ID is the byte offset after
// it, so that a browser that reconnects (EventSource sends Last-Event-ID)
// goes on where it was. The stream reads the log through the store in
// pieces of logChunk bytes into one buffer, whatever the log's size:
// memory stays flat. While the attempt runs it looks for more every
// LogPoll: a log kept in a file (store/logs.go) stays open and is read
// on from where it was, one still in the store's memory is opened again
// at the offset; once the attempt ended, the log is read to its end once
// more and the stream says "end".

const (
	logChunk  = 32 << 10
	heartbeat = 15 * time.Second
	// statusEvery is how often a stream at the end of a running
	// attempt's log asks the store whether the attempt ended.
	statusEvery = time.Second
)

// logAttempt reads the attempt a log request names (?attempt=ID), which
// must be one of the job's: a link's grant covers one pipeline's paths.
func (h *Handler) logAttempt(w http.ResponseWriter, r *http.Request) (*engine.AttemptRecord, bool) {
	_, j, err := h.job(r.Context(), r)
	if err != nil {
		h.notFound(w, r, err, "such job")
		return nil, false
	}
	id := r.URL.Query().Get("attempt")
	if id == "" {
		id = j.AttemptID
	}
	a, err := h.store.Attempt(r.Context(), id)
	if err != nil || a.JobID != j.ID {
		h.fail(w, r, http.StatusNotFound, "There is no such attempt of this job.")
		return nil, false
	}
	return a, true
}

// logText serves the log as it is so far, as plain text.
func (h *Handler) logText(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, ok := h.logAttempt(w, r)
	if !ok {
		return
	}
	rc, err := h.store.JobLog(r.Context(), a.ID)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.Copy(w, rc) // a file goes by sendfile; the buffer is io.Copy's
}

// logStream serves the log as Server-Sent Events, live while it runs.
func (h *Handler) logStream(w http.ResponseWriter, r *http.Request, v *viewer) {
	a, ok := h.logAttempt(w, r)
	if !ok {
		return
	}
	var offset int64
	resumed := false
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
			offset, resumed = n, true
		}
	}
	tail, _ := strconv.ParseInt(r.URL.Query().Get("tail"), 10, 64)
	if resumed {
		tail = 0
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	s := &logStreamer{h: h, w: w, flush: rc.Flush, attempt: a.ID, offset: offset, tail: tail, ended: !a.Finished.IsZero(),
		buf: make([]byte, logChunk), conv: newANSI()}
	if err := s.run(r.Context()); err != nil && !errors.Is(err, context.Canceled) {
		h.log.Warn("log stream ended early", "attempt", a.ID, "err", err)
	}
}

// logStreamer is one viewer's stream of one attempt's log.
type logStreamer struct {
	h       *Handler
	w       io.Writer
	flush   func() error // sends what w holds
	attempt string
	offset  int64 // bytes of the log sent so far
	limit   int64 // if not 0, where reading stops (see follow)
	tail    int64 // start this many bytes before the end (0: at offset)
	ended   bool  // the attempt ended: the log is whole
	buf     []byte
	out     []byte // the HTML of a chunk
	ev      []byte // the event around it
	conv    *ansiHTML
	src     io.ReadCloser
	file    bool // src is a file still being written: read on at EOF
}

func (s *logStreamer) run(ctx context.Context) error {
	defer s.closeSource()
	if !s.ended {
		// Live: once it has caught up, the viewer follows the log with
		// the others (see follow), unless it must go on alone.
		if err := s.drain(ctx); err != nil {
			return err
		}
		if err := s.follow(ctx); !errors.Is(err, errAlone) {
			return err
		}
	}
	return s.alone(ctx)
}

func (s *logStreamer) closeSource() {
	if s.src != nil {
		s.src.Close()
		s.src = nil
	}
}

// alone streams the log by reading it itself until the attempt ends.
func (s *logStreamer) alone(ctx context.Context) error {
	poll := time.NewTicker(s.h.poll)
	defer poll.Stop()
	lastBeat, lastStatus := time.Now(), time.Now()
	for {
		if err := s.drain(ctx); err != nil {
			return err
		}
		if s.ended {
			// What was read after the end was seen is all there is.
			s.out = s.conv.convert(s.out[:0], nil, true)
			if len(s.out) > 0 {
				s.send(s.out)
			}
			io.WriteString(s.w, "event: end\ndata: ended\n\n")
			return s.flush()
		}
		if !s.file && s.src != nil {
			s.src.Close() // a copy of memory: open again for more
			s.src = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
		now := time.Now()
		if now.Sub(lastStatus) >= statusEvery {
			lastStatus = now
			a, err := s.h.store.Attempt(ctx, s.attempt)
			if err != nil {
				return err
			}
			if !a.Finished.IsZero() {
				// Read it all once more from a fresh open: the log may
				// have moved from memory to a row or a file.
				s.ended = true
				if s.src != nil {
					s.src.Close()
					s.src = nil
				}
			}
		}
		if now.Sub(lastBeat) >= heartbeat {
			lastBeat = now
			if err := s.heartbeat(); err != nil {
				return err
			}
		}
	}
}

// drain sends what the log holds past the offset, then flushes.
func (s *logStreamer) drain(ctx context.Context) error {
	if s.src == nil {
		if err := s.open(ctx); err != nil {
			return err
		}
	}
	sent := false
	for {
		b := s.buf
		if s.limit > 0 {
			if s.offset >= s.limit {
				break
			}
			b = b[:min(int64(len(b)), s.limit-s.offset)]
		}
		n, err := s.src.Read(b)
		if n > 0 {
			s.offset += int64(n)
			s.out = s.conv.convert(s.out[:0], b[:n], false)
			if err := s.send(s.out); err != nil {
				return err
			}
			sent = true
		}
		if errors.Is(err, io.EOF) || n == 0 && err == nil {
			break
		}
		if err != nil {
			return err
		}
	}
	if sent {
		return s.flush()
	}
	return nil
}

func (s *logStreamer) heartbeat() error {
	io.WriteString(s.w, ": still here\n\n")
	return s.flush()
}

// open opens the log at the offset, or near its end the first time
// when a tail was asked for: a browser shows a few megabytes, not a
// hundred.
func (s *logStreamer) open(ctx context.Context) error {
	src, err := s.h.store.JobLog(ctx, s.attempt)
	if err != nil {
		return err
	}
	s.src = src
	_, s.file = src.(*os.File)
	s.file = s.file && !s.ended
	seeker, canSeek := src.(io.Seeker)
	if s.tail > 0 && canSeek {
		size, err := seeker.Seek(0, io.SeekEnd)
		if err != nil {
			return err
		}
		if size > s.offset+s.tail {
			skip := size - s.tail
			if _, err := seeker.Seek(skip, io.SeekStart); err != nil {
				return err
			}
			// Start at a line's beginning.
			n, _ := io.ReadFull(src, s.buf[:min(len(s.buf), int(s.tail))])
			cut := bytes.IndexByte(s.buf[:n], '\n') + 1
			if _, err := seeker.Seek(skip+int64(cut), io.SeekStart); err != nil {
				return err
			}
			s.offset = skip + int64(cut)
			s.ev = append(s.ev[:0], "event: skipped\ndata: "...)
			s.ev = strconv.AppendInt(s.ev, s.offset, 10)
			s.ev = append(s.ev, "\n\n"...)
			if _, err := s.w.Write(s.ev); err != nil {
				return err
			}
			s.tail = 0
			return nil
		}
		s.tail = 0
	}
	if canSeek { // back from measuring the size, too
		_, err = seeker.Seek(s.offset, io.SeekStart)
		return err
	}
	_, err = io.CopyN(io.Discard, src, s.offset)
	return err
}

// send writes one event: the HTML, a data line per line of it.
func (s *logStreamer) send(html []byte) error {
	if len(html) == 0 {
		return nil
	}
	ev := append(s.ev[:0], "id: "...)
	ev = strconv.AppendInt(ev, s.offset, 10)
	ev = append(ev, '\n')
	for {
		i := bytes.IndexByte(html, '\n')
		ev = append(ev, "data: "...)
		if i < 0 {
			ev = append(ev, html...)
			ev = append(ev, '\n')
			break
		}
		ev = append(ev, html[:i]...)
		ev = append(ev, '\n')
		html = html[i+1:]
	}
	ev = append(ev, '\n')
	s.ev = ev
	_, err := s.w.Write(ev)
	return err
}
