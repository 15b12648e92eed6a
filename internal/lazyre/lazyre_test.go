package lazyre

import "testing"

func TestLazy(t *testing.T) {
	r := New(`^a(b+)$`)
	if r.re != nil {
		t.Fatal("compiled before use")
	}
	if !r.MatchString("abb") || r.MatchString("ac") {
		t.Error("MatchString")
	}
	if m := r.FindStringSubmatch("abbb"); len(m) != 2 || m[1] != "bbb" {
		t.Errorf("FindStringSubmatch = %q", m)
	}
	if got := New(`b`).ReplaceAllString("abc", "x"); got != "axc" {
		t.Errorf("ReplaceAllString = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("an invalid pattern did not panic at first use")
		}
	}()
	New(`(`).MatchString("")
}
