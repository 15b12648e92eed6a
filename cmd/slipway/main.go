// Command slipway is the ChatOps deployment bot (serve) and its local
// tools: validate, plan and run CircleCI-format workflows.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/slipway-ci/slipway/executors/local"
)

const usage = `usage: slipway <command> [flags]

commands:
  console [--repo DIR] [--config FILE [--app NAME]] [--executor auto|local|docker]
                              the bot in this terminal, on a local git repository
  serve --config FILE [--check]
                              the bot: GitHub webhooks, pipelines, statuses; --check validates FILE
  validate FILE...            check config files; errors as file:line:col
  orb vendor FILE [--out DIR] [--registry URL]
                              write the orbs FILE uses into .circleci/orbs, for use offline
  plan FILE --branch B | --tag T [--sha S] [--param k=v]... [--deploy-env E] [--json]
  run FILE [--branch B | --tag T] [--sha S] [--repo DIR] [--param k=v]... [--allow-machine]
           [--executor local|docker] [--remote-docker] [--approve | --reject] [--deploy] [--logs] [--json]

validate, plan and run fetch orbs that are not vendored from CircleCI's orb
registry (--registry URL; CIRCLECI_TOKEN for private orbs); --offline never does.
`

func main() {
	// First, before any secret is read: no process of this user may read
	// slipway's environment or memory (its jobs run as this user too).
	if err := local.Protect(); err != nil {
		fmt.Fprintln(os.Stderr, "slipway:", err)
	}
	stopProfile := profile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	stopProfile()
	os.Exit(code)
}

// Main runs one slipway command and returns its exit code. Tests call it
// directly, so it touches no globals.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "validate":
		return validateCommand(ctx, rest, stdout, stderr)
	case "plan":
		return planCommand(ctx, rest, stdout, stderr)
	case "run":
		return runCommand(ctx, rest, stdin, stdout, stderr)
	case "console":
		return consoleCommand(ctx, rest, stdin, stdout, stderr)
	case "orb":
		return orbCommand(ctx, rest, stdout, stderr)
	case "serve":
		return serveCommand(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "slipway: unknown command %q\n%s", cmd, usage)
		return 2
	}
}
