package config

import (
	"fmt"
	"log/slog"
)

// Secret is a value that must not be shown: it formats, logs and
// marshals (JSON, YAML, text) as [redacted], however it is printed and
// wherever it sits in a struct, map or slice. string(s) is its value.
type Secret string

const redacted = "[redacted]"

// String returns [redacted], or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format prints [redacted] for every verb, %#v and %x included.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue logs [redacted].
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText marshals [redacted], for encoding/json and YAML.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
