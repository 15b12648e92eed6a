package bot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// A line of a log's tail is kept up to maxTailLine bytes: its first and
// last halves, with what was cut said between them, so that a 1 GB line
// of minified output costs a few kilobytes and the lines after it still
// show.
const maxTailLine = 8 << 10

// Tail returns the last n lines of a log, reading it as a stream: memory
// stays flat however long the log or its lines.
func Tail(r io.Reader, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
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
			return nil, err
		}
	}
	out := make([]string, 0, min(n, count))
	for k := max(0, count-n); k < count; k++ {
		out = append(out, string(ring[k%n]))
	}
	return out, nil
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
