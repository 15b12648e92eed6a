package executors

import "testing"

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
