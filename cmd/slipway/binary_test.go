package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Calling reflect's Method or MethodByName with a name the compiler
// cannot see, as executing a text/template or html/template does, makes
// the linker keep every exported method of every type in the binary: the
// AWS, GitHub, Slack and Docker clients' hundreds of operations, 15 MB of
// binary and 9 MB more memory for every `slipway run`. Cache keys have a
// renderer of their own (executors.RenderKey) and the dashboard's pages
// are templ components for that. The linker says whether anything calls
// those again.
func TestBinaryKeepsNoMethodForReflection(t *testing.T) {
	if testing.Short() {
		t.Skip("links the binary")
	}
	args := []string{"build", "-ldflags=-dumpdep", "-o", os.DevNull}
	if raceBuild {
		args = append(args, "-race") // the packages the test was built from
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%.2000s", err, out)
	}
	var callers []string
	for _, line := range strings.Split(string(out), "\n") {
		from, to, ok := strings.Cut(line, " -> ")
		if ok && strings.HasSuffix(to, "<ReflectMethod>") && !strings.HasPrefix(from, "reflect.") && !strings.HasPrefix(from, "type:reflect.") {
			callers = append(callers, line)
		}
	}
	if len(callers) > 0 {
		t.Errorf("the binary looks methods up by name, so the linker keeps them all:\n%s", strings.Join(callers, "\n"))
	}
}
