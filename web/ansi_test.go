package web

import (
	"fmt"
	"testing"
)

func TestANSI(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"plain", []string{"hello <world> & co\n"}, "hello &lt;world&gt; &amp; co\n"},
		{"colour and reset", []string{"\x1b[31mred\x1b[0m plain\n"}, `<span class="f1">red</span> plain` + "\n"},
		{"bold bright", []string{"\x1b[1;92mok\x1b[22m still\x1b[39m\n"}, `<span class="f10 ab">ok</span><span class="f10"> still</span>` + "\n"},
		{"a span per chunk", []string{"\x1b[34mab", "cd\x1b[m"}, `<span class="f4">ab</span><span class="f4">cd</span>`},
		{"a sequence cut in two", []string{"x\x1b[3", "2my"}, `x<span class="f2">y</span>`},
		{"a character cut in two", []string{"caf\xc3", "\xa9!"}, "café!"},
		{"crlf and lone cr", []string{"a\r\nb\rc\r", "\nd"}, "a\nb\nc\nd"},
		{"256 and true colour", []string{"\x1b[38;5;196mr\x1b[48;2;0;0;255mb\x1b[0m"}, `<span class="f9">r</span><span class="f9 g12">b</span>`},
		{"cursor moves and OSC dropped", []string{"\x1b[2K\x1b[1Gx\x1b]8;;http://e\x07link\x1b]8;;\x07\n"}, "xlink\n"},
		{"invalid utf-8", []string{"a\xffb"}, "a\uFFFDb"},
		{"controls dropped", []string{"a\bb\x07c\td"}, "abc\td"},
		{"inverse", []string{"\x1b[7mi\x1b[27m"}, `<span class="f16 g17">i</span>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newANSI()
			var out []byte
			for i, c := range tt.chunks {
				out = a.convert(out, []byte(c), i == len(tt.chunks)-1)
			}
			if string(out) != tt.want {
				t.Errorf("got  %q\nwant %q", out, tt.want)
			}
		})
	}
}

// BenchmarkANSI converts a coloured build log, the live-log benchmark's
// lines: a colour per line and characters to escape.
func BenchmarkANSI(b *testing.B) {
	var src []byte
	for i := range 400 {
		src = fmt.Appendf(src, "\x1b[32m%08d\x1b[0m step output <with> some text and a path /src/acme/%d\n", i, i%31)
	}
	a := newANSI()
	var dst []byte
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst = a.convert(dst[:0], src, false)
	}
}
