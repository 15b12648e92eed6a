package executors

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writes records each write it gets.
type writes struct {
	mu  sync.Mutex
	got []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	tests := []struct {
		name   string
		writes []string
		want   []string // writes to the log, Close's included
	}{
		{"whole lines pass as written", []string{"a\nb\n", "c\n"}, []string{"a\nb\n", "c\n"}},
		{"a line cut in two is held back", []string{"fir", "st\nsec", "ond\n"}, []string{"first\n", "second\n"}},
		{"a last line without newline is ended at Close", []string{"done\n", "no newline"}, []string{"done\n", "no newline\n"}},
		{"a long line without newline is not held back", []string{long, "tail\n"}, []string{long, "tail\n"}},
		{"nothing written, nothing logged", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out writes
			lw := NewLineWriter(&out)
			for _, s := range tt.writes {
				if n, err := lw.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if lw.Close() {
				t.Error("Close reported silence without a watch")
			}
			if diff := cmp.Diff(tt.want, out.all()); diff != "" {
				t.Errorf("log writes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLineWriterStreams checks that a line reaches the log when it is
// written, not when the writer is closed.
func TestLineWriterStreams(t *testing.T) {
	var out writes
	lw := NewLineWriter(&out)
	lw.Write([]byte("first\nsecond pa"))
	if diff := cmp.Diff([]string{"first\n"}, out.all()); diff != "" {
		t.Errorf("before Close (-want +got):\n%s", diff)
	}
	lw.Close()
}

func TestLineWriterWatch(t *testing.T) {
	t.Run("silence", func(t *testing.T) {
		lw := NewLineWriter(&writes{})
		fired := make(chan struct{}, 2)
		lw.Watch(20*time.Millisecond, func() { fired <- struct{}{} })
		select {
		case <-fired:
		case <-time.After(5 * time.Second):
			t.Fatal("onSilent not called")
		}
		if !lw.Close() {
			t.Error("Close did not report the silence")
		}
		time.Sleep(50 * time.Millisecond)
		if len(fired) != 0 {
			t.Error("onSilent called twice")
		}
	})
	t.Run("output keeps it quiet", func(t *testing.T) {
		lw := NewLineWriter(&writes{})
		fired := make(chan struct{}, 1)
		lw.Watch(100*time.Millisecond, func() { fired <- struct{}{} })
		for range 10 {
			time.Sleep(30 * time.Millisecond)
			lw.Write([]byte("tick\n"))
		}
		if lw.Close() || len(fired) != 0 {
			t.Error("a step that kept printing was found silent")
		}
	})
}

// TestSyncWriterKeepsLinesWhole writes lines from several goroutines, as
// background and foreground steps do, and checks that none is cut.
func TestSyncWriterKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	log := NewSyncWriter(&buf)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			lw := NewLineWriter(log)
			defer lw.Close()
			line := strings.Repeat(string(rune('a'+g)), 100) + "\n"
			for range 200 {
				lw.Write([]byte(line[:37]))
				lw.Write([]byte(line[37:]))
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if len(l) != 100 || strings.Count(l, l[:1]) != 100 {
			t.Fatalf("a line was cut: %q", l)
		}
	}
}

// BenchmarkLineWriter passes 32 KB frames of 70-byte lines, frames and
// lines not aligned, as an exec stream or a pipe brings a busy step's
// output.
func BenchmarkLineWriter(b *testing.B) {
	line := strings.Repeat("slipway log line ", 5)[:69] + "\n"
	data := []byte(strings.Repeat(line, 1<<20/len(line)))
	lw := NewLineWriter(io.Discard)
	lw.Watch(time.Hour, func() {})
	defer lw.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for p := data; len(p) > 0; {
			n := min(32<<10, len(p))
			lw.Write(p[:n])
			p = p[n:]
		}
	}
}
