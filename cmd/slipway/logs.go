package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// A line of a failed job's tail is kept up to maxTailLine bytes: its
// first and last halves, with what was cut said between them, so that a
// 1 GB line of minified output costs a few kilobytes and the lines after
// it still show.
const maxTailLine = 8 << 10

// writeLog copies a job log to w indented, streaming it: only its last n
// lines when n > 0, else all of it. Memory stays flat however long the
// log or its lines.
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
	// A ring of the last n lines, whose buffers are reused.
	ring := make([][]byte, n)
	count := 0
	br := bufio.NewReaderSize(r, 64<<10)
	var line boundedLine
	for {
		chunk, err := br.ReadSlice('\n')
		line.add(bytes.TrimSuffix(chunk, []byte("\n")))
		if err == nil || (err == io.EOF && line.total > 0) {
			slot := count % n
			ring[slot] = line.appendText(ring[slot][:0])
			count++
			line.reset()
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for k := max(0, count-n); k < count; k++ {
		if _, err := fmt.Fprintf(w, "    %s\n", ring[k%n]); err != nil {
			return err
		}
	}
	return nil
}

// boundedLine keeps the head and the tail of a line of any length.
type boundedLine struct {
	head  []byte
	tail  []byte // a window of the line's last bytes once head is full
	total int
}

func (b *boundedLine) add(p []byte) {
	b.total += len(p)
	if room := maxTailLine/2 - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - maxTailLine/2; over > 0 {
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
}

// appendText appends the line, cut in its middle if it was too long.
func (b *boundedLine) appendText(dst []byte) []byte {
	dst = append(dst, b.head...)
	if cut := b.total - len(b.head) - len(b.tail); cut > 0 {
		dst = fmt.Appendf(dst, " … [%d bytes cut] … ", cut)
	}
	return append(dst, b.tail...)
}

func (b *boundedLine) reset() {
	b.head, b.tail, b.total = b.head[:0], b.tail[:0], 0
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
