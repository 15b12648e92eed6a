package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/slipway-ci/slipway/bot"
)

// writeLog copies a job log to w indented, streaming it: only its last n
// lines when n > 0 (see bot.Tail), else all of it. Memory stays flat
// however long the log or its lines.
func writeLog(w io.Writer, r io.Reader, n int) error {
	if n <= 0 {
		iw := &indentWriter{w: w, start: true}
		if _, err := io.Copy(iw, r); err != nil {
			return err
		}
		if !iw.start {
			_, err := io.WriteString(w, "\n")
			return err
		}
		return nil
	}
	lines, err := bot.Tail(r, n)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "    %s\n", l); err != nil {
			return err
		}
	}
	return nil
}

// indentWriter indents every line written through it by four spaces.
type indentWriter struct {
	w     io.Writer
	start bool // the next byte begins a line
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if iw.start {
			if _, err := io.WriteString(iw.w, "    "); err != nil {
				return 0, err
			}
			iw.start = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			_, err := iw.w.Write(p)
			return n, err
		}
		if _, err := iw.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		p, iw.start = p[i+1:], true
	}
	return n, nil
}
