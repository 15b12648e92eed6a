package main

import (
	"context"
	"fmt"
	"io"
)

// runCommand is `slipway run`; its owner is the engine work (issue 3).
func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "slipway run: engine not landed yet")
	return 2
}
