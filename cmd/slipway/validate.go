package main

import (
	"context"
	"fmt"
	"io"
)

func validateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "slipway validate: language not landed yet")
	return 2
}

func planCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "slipway plan: language not landed yet")
	return 2
}
