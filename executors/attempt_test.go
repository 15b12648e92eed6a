package executors

import (
	"os"
	"testing"
)

func TestCheckAttemptID(t *testing.T) {
	for _, id := range []string{"a", "0f3a9c", "t-abc123", "bench-1700000000-3", "build_1.2"} {
		if err := CheckAttemptID(id); err != nil {
			t.Errorf("CheckAttemptID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "../escape", "a/b", ".hidden", "-flag", "a b", "a=b", "a,b", "ä"} {
		if err := CheckAttemptID(id); err == nil {
			t.Errorf("CheckAttemptID(%q) = nil, want an error", id)
		}
	}
}

func TestProcessGone(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		gone bool
	}{
		{"this process: an earlier one had its PID", os.Getpid(), true},
		{"init runs", 1, false},
		{"no process has it (above the kernel's limit)", 999999999, true},
	}
	for _, tt := range tests {
		if got := ProcessGone(tt.pid); got != tt.gone {
			t.Errorf("%s: ProcessGone(%d) = %v", tt.name, tt.pid, got)
		}
	}
}
