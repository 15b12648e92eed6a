package executors

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPipe(t *testing.T) {
	broken := errors.New("disk gone")
	full := errors.New("cache full")
	tests := []struct {
		name    string
		produce func(io.Writer) error
		consume func(io.Reader) error
		want    error
	}{
		{"both succeed", func(w io.Writer) error { _, err := io.WriteString(w, "data"); return err },
			func(r io.Reader) error { _, err := io.ReadAll(r); return err }, nil},
		{"the producer's failure is the cause", func(w io.Writer) error { return broken },
			func(r io.Reader) error { _, err := io.ReadAll(r); return err }, broken},
		{"a consumer that stops early is no producer error", func(w io.Writer) error {
			_, err := io.Copy(w, strings.NewReader(strings.Repeat("x", 1<<20)))
			return err
		}, func(r io.Reader) error { return nil }, nil},
		{"the consumer's own failure", func(w io.Writer) error {
			_, err := io.Copy(w, strings.NewReader(strings.Repeat("x", 1<<20)))
			return err
		}, func(r io.Reader) error { return full }, full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Pipe(tt.produce, tt.consume); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Pipe = %v, want %v", err, tt.want)
			}
		})
	}
}
