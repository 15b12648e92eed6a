package engine

import (
	"bytes"
	"io"
	"slices"
	"strings"
)

// maskMinLen is the shortest secret value masked. As in CircleCI, shorter
// values are left alone: masking "1" or "yes" would garble every log
// without hiding anything worth hiding.
const maskMinLen = 4

const maskText = "********"

// maxLine bounds how much of a line without a newline is held back.
const maxLine = 64 << 10

// MaskingWriter replaces secret values with asterisks in what it writes
// to the underlying writer, a line at a time, so that a secret split
// across two Writes is still caught; what ends a write out and could be
// the start of a secret (the first lines of a key in PEM form, say) is
// held back until the rest shows whether it is one. It defends job logs
// against a job that echoes its credentials; it cannot catch a secret
// transformed (base64, reversed) by the job.
type MaskingWriter struct {
	w       io.WriteCloser
	secrets [][]byte // longest first, so a secret containing another is masked whole
	buf     []byte
	err     error
}

// NewMaskingWriter wraps w; Close flushes the last partial line and closes w.
func NewMaskingWriter(w io.WriteCloser, secrets []string) *MaskingWriter {
	m := &MaskingWriter{w: w}
	add := func(s string) {
		if len(s) >= maskMinLen && !slices.ContainsFunc(m.secrets, func(b []byte) bool { return string(b) == s }) {
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	for _, s := range secrets {
		add(s)
		// Each line of a secret of several lines (a key, a JSON
		// credential) is masked too, where a job prints only a part.
		if strings.Contains(s, "\n") {
			for line := range strings.Lines(s) {
				add(strings.TrimRight(line, "\r\n"))
			}
		}
	}
	slices.SortFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// Write masks and writes every complete line of p, holding back the rest.
func (m *MaskingWriter) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if len(m.secrets) == 0 {
		_, m.err = m.w.Write(p)
		if m.err != nil {
			return 0, m.err
		}
		return len(p), nil
	}
	m.buf = append(m.buf, p...)
	// Complete lines go out, and a long line whole.
	end := bytes.LastIndexByte(m.buf, '\n') + 1
	if len(m.buf) > maxLine {
		end = len(m.buf)
	}
	if end > 0 {
		keep := m.secretPrefixLen(m.buf[:end])
		m.emit(m.mask(m.buf[:end-keep]))
		m.buf = append(m.buf[:0], m.buf[end-keep:]...)
	}
	if m.err != nil {
		return 0, m.err
	}
	return len(p), nil
}

// Close writes the last partial line and closes the underlying writer.
func (m *MaskingWriter) Close() error {
	if len(m.buf) > 0 {
		m.emit(m.mask(m.buf))
		m.buf = nil
	}
	if err := m.w.Close(); err != nil && m.err == nil {
		m.err = err
	}
	return m.err
}

func (m *MaskingWriter) emit(b []byte) {
	if m.err == nil && len(b) > 0 {
		_, m.err = m.w.Write(b)
	}
}

func (m *MaskingWriter) mask(b []byte) []byte {
	out := b
	for _, s := range m.secrets {
		if bytes.Contains(out, s) {
			out = bytes.ReplaceAll(out, s, []byte(maskText))
		}
	}
	if len(out) > 0 && &out[0] == &b[0] {
		out = slices.Clone(out) // never alias m.buf
	}
	return out
}

// secretPrefixLen is the length of the longest suffix of b that is a
// proper prefix of a secret: a secret beginning there is not masked yet.
func (m *MaskingWriter) secretPrefixLen(b []byte) int {
	best := 0
	for _, s := range m.secrets {
		// From the longest candidate down, so the first match is the
		// longest for s.
		for i := max(0, len(b)-len(s)+1); i < len(b)-best; i++ {
			if b[i] == s[0] && bytes.HasPrefix(s, b[i:]) {
				best = len(b) - i
				break
			}
		}
	}
	return best
}
