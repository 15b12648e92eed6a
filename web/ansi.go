package web

import (
	"strconv"
	"unicode/utf8"
)

// ansiHTML turns a log's bytes into HTML for a <pre>, chunk by chunk:
// text escaped, SGR colours and weights as spans with classes (the page's
// Content-Security-Policy allows no inline styles), every other escape
// sequence dropped. It keeps the style and an unfinished sequence from
// one chunk to the next, and closes its span at the end of each chunk so
// that every chunk is HTML on its own (the page appends them as they come).
type ansiHTML struct {
	st      sgr
	pending []byte // an escape sequence, a UTF-8 character or a \r cut by the chunk's end
	joined  []byte // pending and the next chunk, in a buffer kept from chunk to chunk
}

// sgr is the current graphic rendition.
type sgr struct {
	fg, bg             int8 // -1 default, 0..15 the terminal colours
	bold, dim, italic  bool
	underline, inverse bool
}

var plain = sgr{fg: -1, bg: -1}

func newANSI() *ansiHTML { return &ansiHTML{st: plain} }

// ansiState is what an ansiHTML carries from one chunk to the next: two
// converters in equal states turn the same bytes into the same HTML.
type ansiState struct {
	st      sgr
	pending string
}

func (a *ansiHTML) state() ansiState { return ansiState{a.st, string(a.pending)} }

func (a *ansiHTML) setState(s ansiState) {
	a.st = s.st
	a.pending = append(a.pending[:0], s.pending...)
}

// maxPending bounds what is held back for the next chunk: a sequence
// longer than this is no sequence slipway renders, and is dropped.
const maxPending = 64

// convert appends the HTML of src to dst. final says no more follows:
// whatever was held back is written out.
func (a *ansiHTML) convert(dst, src []byte, final bool) []byte {
	if len(a.pending) > 0 {
		a.joined = append(append(a.joined[:0], a.pending...), src...)
		src = a.joined
		a.pending = a.pending[:0]
	}
	open := false
	openSpan := func() {
		if !open && a.st != plain {
			dst = a.st.appendOpen(dst)
			open = true
		}
	}
	closeSpan := func() {
		if open {
			dst = append(dst, "</span>"...)
			open = false
		}
	}
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == 0x1b:
			n, ok := escapeLen(src[i:])
			if !ok {
				if final || len(src)-i > maxPending {
					i++ // a cut or overlong sequence: its ESC is dropped, the rest shown
					continue
				}
				a.pending = append(a.pending, src[i:]...)
				i = len(src)
				continue
			}
			if n >= 3 && src[i+1] == '[' && src[i+n-1] == 'm' {
				next := a.st.apply(src[i+2 : i+n-1])
				if next != a.st {
					closeSpan()
					a.st = next
				}
			}
			i += n
		case c == '\r':
			if i+1 == len(src) && !final {
				a.pending = append(a.pending, '\r')
				i++
				continue
			}
			if i+1 < len(src) && src[i+1] == '\n' {
				i++ // \r\n is \n
				continue
			}
			// A lone \r (a progress bar redrawing its line) starts a
			// new line: a log is read later, not watched as a terminal.
			closeSpan()
			dst = append(dst, '\n')
			i++
		case c == '\n':
			closeSpan() // a span per line keeps chunks cheap to split
			dst = append(dst, '\n')
			i++
		case c == '\t':
			openSpan()
			dst = append(dst, '\t')
			i++
		case c < 0x20 || c == 0x7f:
			i++ // bell, backspace and other controls
		case c == '&':
			openSpan()
			dst = append(dst, "&amp;"...)
			i++
		case c == '<':
			openSpan()
			dst = append(dst, "&lt;"...)
			i++
		case c == '>':
			openSpan()
			dst = append(dst, "&gt;"...)
			i++
		case c < utf8.RuneSelf:
			openSpan()
			j := i + 1
			for j < len(src) && src[j] >= 0x20 && src[j] < utf8.RuneSelf && src[j] != '&' && src[j] != '<' && src[j] != '>' && src[j] != 0x7f {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n <= 1 && !final && !utf8.FullRune(src[i:]) {
				a.pending = append(a.pending, src[i:]...)
				i = len(src)
				continue
			}
			openSpan()
			if r == utf8.RuneError && n <= 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, src[i:i+n]...)
			}
			i += n
		}
	}
	closeSpan()
	return dst
}

// escapeLen returns the length of the escape sequence at the start of b
// (b[0] is ESC), or false when b ends before it does.
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '[': // CSI: parameters and intermediates, then a final byte
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1, true
			}
		}
		return 0, false
	case ']': // OSC: ends with BEL or ESC \
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1, true
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2, true
			}
		}
		return 0, false
	}
	return 2, true
}

// apply returns the rendition after the SGR parameters p ("1;31").
func (s sgr) apply(p []byte) sgr {
	var params []int
	for len(p) > 0 || params == nil {
		j := 0
		for j < len(p) && p[j] != ';' && p[j] != ':' {
			j++
		}
		n, _ := strconv.Atoi(string(p[:j]))
		params = append(params, n)
		if j >= len(p) {
			break
		}
		p = p[j+1:]
	}
	for i := 0; i < len(params); i++ {
		switch n := params[i]; {
		case n == 0:
			s = plain
		case n == 1:
			s.bold = true
		case n == 2:
			s.dim = true
		case n == 3:
			s.italic = true
		case n == 4:
			s.underline = true
		case n == 7:
			s.inverse = true
		case n == 22:
			s.bold, s.dim = false, false
		case n == 23:
			s.italic = false
		case n == 24:
			s.underline = false
		case n == 27:
			s.inverse = false
		case n >= 30 && n <= 37:
			s.fg = int8(n - 30)
		case n == 39:
			s.fg = -1
		case n >= 40 && n <= 47:
			s.bg = int8(n - 40)
		case n == 49:
			s.bg = -1
		case n >= 90 && n <= 97:
			s.fg = int8(n - 90 + 8)
		case n >= 100 && n <= 107:
			s.bg = int8(n - 100 + 8)
		case n == 38 || n == 48:
			c, used := extendedColour(params[i+1:])
			i += used
			if n == 38 {
				s.fg = c
			} else {
				s.bg = c
			}
		}
	}
	return s
}

// extendedColour reads "5;n" or "2;r;g;b" after 38 or 48 and returns the
// nearest of the 16 terminal colours, and how many parameters it used.
func extendedColour(p []int) (int8, int) {
	if len(p) >= 2 && p[0] == 5 {
		n := p[1]
		switch {
		case n < 16:
			return int8(n), 2
		case n >= 232: // greys
			if n < 244 {
				return 8, 2
			}
			return 7, 2
		}
		n -= 16
		return nearest16(n/36*51, n/6%6*51, n%6*51), 2
	}
	if len(p) >= 4 && p[0] == 2 {
		return nearest16(p[1], p[2], p[3]), 4
	}
	return -1, len(p)
}

func nearest16(r, g, b int) int8 {
	bit := func(v int) int {
		if v >= 128 {
			return 1
		}
		return 0
	}
	c := bit(r) | bit(g)<<1 | bit(b)<<2
	if max(r, g, b) >= 200 {
		c += 8
	}
	return int8(c)
}

// appendOpen writes the span that sets s.
func (s sgr) appendOpen(dst []byte) []byte {
	fg, bg := s.fg, s.bg
	if s.inverse {
		fg, bg = bg, fg
		if fg < 0 {
			fg = 16 // the page's background as a colour
		}
		if bg < 0 {
			bg = 17 // the page's text colour
		}
	}
	dst = append(dst, `<span class="`...)
	sep := false
	add := func(c string) {
		if sep {
			dst = append(dst, ' ')
		}
		dst = append(dst, c...)
		sep = true
	}
	if fg >= 0 {
		add(fgClass[fg])
	}
	if bg >= 0 {
		add(bgClass[bg])
	}
	if s.bold {
		add("ab")
	}
	if s.dim {
		add("ad")
	}
	if s.italic {
		add("ai")
	}
	if s.underline {
		add("au")
	}
	return append(dst, `">`...)
}

var fgClass, bgClass [18]string

func init() {
	for i := range fgClass {
		fgClass[i] = "f" + strconv.Itoa(i)
		bgClass[i] = "g" + strconv.Itoa(i)
	}
}
