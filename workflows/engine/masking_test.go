package engine

import (
	"bytes"
	"strings"
	"testing"
)

type bufCloser struct{ bytes.Buffer }

func (*bufCloser) Close() error { return nil }

func TestMaskingWriter(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	tests := []struct {
		name    string
		secrets []string
		writes  []string
		want    string
	}{
		{"no secrets", nil, []string{"a\n", "b"}, "a\nb"},
		{"one line", []string{"s3cret"}, []string{"token=s3cret\n"}, "token=********\n"},
		{"secret split across writes", []string{"s3cret"}, []string{"token=s3", "cret\nnext\n"}, "token=********\nnext\n"},
		{"last line without newline", []string{"s3cret"}, []string{"a s3cret"}, "a ********"},
		{"longer secret first", []string{"abcd", "abcdefgh"}, []string{"abcdefgh abcd\n"}, "******** ********\n"},
		{"short values are not masked", []string{"yes"}, []string{"yes\n"}, "yes\n"},
		{"secret straddling a long line's flush", []string{"s3cret"}, []string{long + "s3c", "ret\n"}, long + "********\n"},
		{"secret of several lines written a line at a time", []string{"-----BEGIN KEY-----\nAAAASECRETBODY\n-----END KEY-----\n"},
			[]string{"key:\n", "-----BEGIN KEY-----\n", "AAAASECRETBODY\n", "-----END KEY-----\n", "done\n"}, "key:\n********done\n"},
		{"the start of a secret that is not one", []string{"SECRET-START\nAAAASECRETBODY\n"},
			[]string{"SECRET-START\n", "something else\n"}, "********\nsomething else\n"},
		{"a line of a secret of several lines", []string{"-----BEGIN KEY-----\nAAAASECRETBODY\n-----END KEY-----"},
			[]string{"body: AAAASECRETBODY\n"}, "body: ********\n"},
		{"a secret's start at the end of the log", []string{"s3c\nret"}, []string{"a s3c\n"}, "a s3c\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bufCloser
			m := NewMaskingWriter(&out, tt.secrets)
			for _, w := range tt.writes {
				if n, err := m.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				if len(got) > 80 {
					got = "..." + got[len(got)-40:]
				}
				t.Errorf("got %q", got)
			}
		})
	}
}
