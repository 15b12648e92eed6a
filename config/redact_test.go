package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestSecret checks that a Secret does not show however it is printed,
// logged or marshaled, alone or inside a value.
func TestSecret(t *testing.T) {
	s := Secret("hunter2-hunter2")
	holder := struct {
		Name  string
		Token Secret
		Map   map[string]Secret
	}{"x", s, map[string]Secret{"K": s}}
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("m", "token", s, "holder", holder)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "token", s, "holder", holder)
	j, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprintf("%v %s %q %x %X %d %10s %#v %+v", s, s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", holder, holder, holder),
		fmt.Sprint(s, []Secret{s}),
		s.String(),
		logs.String(), string(j), string(y),
	} {
		if strings.Contains(out, string(s)) || !strings.Contains(out, redacted) {
			t.Errorf("shows the secret or no %s:\n%s", redacted, out)
		}
	}
	if Secret("").String() != "" {
		t.Error(`Secret("") is not ""`)
	}
}
