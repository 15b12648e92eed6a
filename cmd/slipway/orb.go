package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/workflows"
)

const orbUsage = `usage: slipway orb vendor FILE [--out DIR] [--orbs DIR]... [--registry URL]

vendor writes the orbs FILE uses that are not vendored yet, the orbs they
import included, as packed YAML fetched from the orb registry, into DIR
(default: the orbs/ folder beside FILE, that is .circleci/orbs), where
slipway finds them without the registry. A partial version (@5) is
written as resolved now. The registry's token, for private orbs, is read
from CIRCLECI_TOKEN.
`

// orbCommand runs `slipway orb <subcommand>`.
func orbCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "vendor" {
		fmt.Fprint(stderr, orbUsage)
		return 2
	}
	fs := flag.NewFlagSet("orb vendor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, orbUsage) }
	var orbDirs stringList
	fs.Var(&orbDirs, "orbs", "folder of vendored orbs, searched after the config's own orbs/ folder (repeatable)")
	out := fs.String("out", "", "where to write the orbs (default: the orbs/ folder beside FILE)")
	registry := fs.String("registry", orbregistry.DefaultURL, "the orb registry's GraphQL endpoint")
	files, err := parseArgs(fs, args[1:])
	if err != nil {
		return flagExit(err)
	}
	if len(files) != 1 {
		fmt.Fprint(stderr, orbUsage)
		return 2
	}
	file := files[0]
	src, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "slipway orb vendor: %v\n", err)
		return 1
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(filepath.Dir(file), "orbs")
	}
	client := orbregistry.New(*registry, orbregistry.Options{Token: os.Getenv("CIRCLECI_TOKEN")})
	opts := workflows.LoadOptions{OrbDirs: append([]string{dir}, orbDirs...), Registry: client}
	cfg, err := workflows.LoadContext(ctx, file, src, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	wrote := 0
	for _, o := range cfg.Orbs() {
		switch o.From {
		case workflows.OrbBuiltIn:
			continue
		case workflows.OrbVendored:
			fmt.Fprintf(stdout, "%s@%s: vendored already, %s\n", o.Name, o.Ref, o.Path)
			continue
		}
		path, err := writeOrb(dir, o, *registry)
		if err != nil {
			fmt.Fprintf(stderr, "slipway orb vendor: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s@%s: %s, %s\n", o.Name, o.Ref, o.Version, path)
		wrote++
	}
	fmt.Fprintf(stdout, "%d orbs written to %s\n", wrote, dir)
	return 0
}

// writeOrb writes an orb's packed YAML where the config language looks
// for that reference: <dir>/<namespace>/<name>@<ref>.yml.
func writeOrb(dir string, o workflows.OrbVersion, registry string) (string, error) {
	ns, name, _ := strings.Cut(o.Name, "/")
	path := filepath.Join(dir, ns, name+"@"+o.Ref+".yml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	head := fmt.Sprintf("# %s@%s is %s@%s from %s, vendored by `slipway orb vendor`.\n", o.Name, o.Ref, o.Name, o.Version, registry)
	if err := os.WriteFile(path, append([]byte(head), o.Source...), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
