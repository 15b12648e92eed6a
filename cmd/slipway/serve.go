package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/slipway-ci/slipway/config"
)

const serveUsage = "usage: slipway serve --config FILE [--check]"

// serveCommand is `slipway serve`: the bot, until SIGINT or SIGTERM.
// --check validates the config and exits.
func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "the server's config file (slipway.yml)")
	check := fs.Bool("check", false, "check the config file and exit: 0 when it is valid, 1 with each problem")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *file == "" || len(rest) > 0 {
		fmt.Fprintln(stderr, serveUsage)
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: valid (%d apps)\n", *file, len(cfg.Apps))
		return 0
	}
	hopts := &slog.HandlerOptions{Level: cfg.Log.Level}
	var log *slog.Logger
	if cfg.Log.Format == "json" {
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	}
	log.Info("config loaded", "file", *file, "config", cfg)
	s, err := NewServer(ctx, cfg, ServerOptions{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "slipway serve:", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "slipway serve:", err)
		return 1
	}
	return 0
}
