package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// configFlags are the flags every command that reads a config shares.
type configFlags struct {
	orbDirs      stringList
	allowMachine bool
	registry     string
	offline      bool
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.orbDirs, "orbs", "folder of vendored orbs, searched after the config's own orbs/ folder (repeatable)")
	fs.BoolVar(&c.allowMachine, "allow-machine", false, "let machine jobs run on this host")
	fs.StringVar(&c.registry, "registry", orbregistry.DefaultURL, "the orb registry that orbs not vendored come from (token: CIRCLECI_TOKEN)")
	fs.BoolVar(&c.offline, "offline", false, "use vendored orbs only, never the orb registry")
}

// options are the load options of a config file: vendored orbs are
// looked for in the orbs/ folder beside it (.circleci/orbs for
// .circleci/config.yml) first, then in --orbs, then in the registry.
func (c *configFlags) options(file string) workflows.LoadOptions {
	opts := workflows.LoadOptions{
		OrbDirs:      append([]string{filepath.Join(filepath.Dir(file), "orbs")}, c.orbDirs...),
		AllowMachine: c.allowMachine,
	}
	if !c.offline {
		opts.Registry = orbregistry.New(c.registry, orbregistry.Options{Token: os.Getenv("CIRCLECI_TOKEN")})
	}
	return opts
}

// load reads and loads a config file.
func (c *configFlags) load(ctx context.Context, file string) (*workflows.Config, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return workflows.LoadContext(ctx, file, src, c.options(file))
}

// continuations loads the configs setup pipelines continue with, as
// their pipelines' configs are loaded.
func continuations(opts workflows.LoadOptions) engine.ContinuationLoader {
	return engine.ContinuationFunc(func(ctx context.Context, _ *engine.PipelineRecord, name string, src []byte) (*workflows.Config, error) {
		return workflows.LoadContext(ctx, name, src, opts)
	})
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// flagExit is the exit code of a command whose flags did not parse: 0
// when they asked for help, which the flag package printed.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// parseArgs parses flags that may come before or after the positional
// arguments, as in `slipway plan FILE --branch main`.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func validateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf configFlags
	cf.register(fs)
	files, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: slipway validate FILE...")
		return 2
	}
	code := 0
	for _, f := range files {
		cfg, err := cf.load(ctx, f)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: valid\n", f)
	}
	return code
}

func planCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf configFlags
	cf.register(fs)
	var tf triggerFlags
	tf.register(fs)
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	files, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) != 1 {
		fmt.Fprintln(stderr, "usage: slipway plan FILE --branch B | --tag T [--sha S] [--param k=v]... [--deploy-env E] [--json]")
		return 2
	}
	t, err := tf.trigger()
	if err != nil {
		fmt.Fprintln(stderr, "slipway plan:", err)
		return 2
	}
	cfg, err := cf.load(ctx, files[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	plan, err := cfg.Plan(t)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(plan); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	printPlan(stdout, plan)
	return 0
}

// printPlan writes a plan for people: one line per job, in the order they
// can run, with what each waits for.
func printPlan(w io.Writer, plan *workflows.Plan) {
	if len(plan.Workflows) == 0 {
		fmt.Fprintln(w, "nothing runs for this trigger")
		return
	}
	for _, wf := range plan.Workflows {
		fmt.Fprintf(w, "workflow %s\n", wf.Name)
		for _, j := range wf.Jobs {
			line := "  " + j.Name
			if j.Job != j.Name {
				line += " (" + j.Job + ")"
			}
			switch j.Type {
			case workflows.JobApproval:
				line += " [approval]"
			case workflows.JobNoOp:
				line += " [no-op]"
			}
			if len(j.Context) > 0 {
				line += " context=" + strings.Join(j.Context, ",")
			}
			if len(j.Requires) > 0 {
				var reqs []string
				for _, name := range sortedKeys(j.Requires) {
					r := name
					if st := j.Requires[name]; len(st) != 1 || st[0] != workflows.StatusSuccess {
						r += ":" + strings.Join(st, "|")
					}
					reqs = append(reqs, r)
				}
				line += " after " + strings.Join(reqs, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
}

// triggerFlags describe a push (or a chat deploy) on the command line.
type triggerFlags struct {
	branch, tag, sha, deployEnv string
	params                      stringList
}

func (f *triggerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.branch, "branch", "", "branch pushed")
	fs.StringVar(&f.tag, "tag", "", "tag pushed")
	fs.StringVar(&f.sha, "sha", "", "commit SHA (default: plan zeros, run the --repo's HEAD)")
	fs.Var(&f.params, "param", "pipeline parameter k=v (repeatable)")
	fs.StringVar(&f.deployEnv, "deploy-env", "", "set pipeline.deploy.environment, as /deploy does")
}

func (f *triggerFlags) trigger() (workflows.Trigger, error) {
	if (f.branch == "") == (f.tag == "") {
		return workflows.Trigger{}, errors.New("give exactly one of --branch and --tag")
	}
	t := workflows.Trigger{Branch: f.branch, Tag: f.tag, Revision: f.sha, Source: "api", Number: 1}
	if t.Revision == "" {
		t.Revision = strings.Repeat("0", 40)
	}
	if len(f.params) > 0 {
		t.Parameters = map[string]any{}
		for _, p := range f.params {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return t, fmt.Errorf("--param %q: want key=value", p)
			}
			t.Parameters[k] = v
		}
	}
	if f.deployEnv != "" {
		t.Deploy = &workflows.DeployValues{Environment: f.deployEnv, Version: t.Revision}
		t.Source = "chat"
	}
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
