package main

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestWriteLogTail(t *testing.T) {
	huge := strings.Repeat("x", 3<<20) // longer than any line buffer
	tests := []struct {
		name string
		log  string
		n    int
		want []string // lines of the output, in order
		not  []string
	}{
		{"last lines", "a\nb\nc\nd\n", 2, []string{"    c", "    d"}, []string{"    b"}},
		{"no newline at the end", "a\nb", 5, []string{"    a", "    b"}, nil},
		{"empty lines kept", "a\n\nb\n", 3, []string{"    a", "    ", "    b"}, nil},
		{"the error after a 3 MB line shows", "start\n" + huge + "\nthe real error\n", 2,
			[]string{"bytes cut]", "    the real error"}, []string{"start"}},
		{"the whole log, indented", "a\nb", 0, []string{"    a", "    b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeLog(&out, strings.NewReader(tt.log), tt.n); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if len(got) > 64<<10 && tt.n > 0 {
				t.Errorf("a tail of %d lines printed %d bytes", tt.n, len(got))
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q missing (or out of order) in %.300q", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.not {
				if strings.Contains(got, w+"\n") {
					t.Errorf("%q should not be printed: %.300q", w, got)
				}
			}
		})
	}
}

// patternReader serves n bytes of lines without holding them.
type patternReader struct{ left int }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	line := []byte("a line of job output, as a noisy test prints it......................\n")
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+r.left)], line[n%len(line):])
		n += c
		r.left -= c
	}
	return n, nil
}

// Printing a 100 MB log, whole or its tail, holds a few buffers, never
// the log (--logs once held 374 MB for 200 MB of output).
func TestWriteLogStreams(t *testing.T) {
	for _, n := range []int{0, 20} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := writeLog(io.Discard, &patternReader{left: 100 << 20}, n); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
			t.Errorf("n=%d: printing a 100 MB log allocated %d MB", n, got>>20)
		}
	}
}
