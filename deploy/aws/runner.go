// Package aws carries out the built-in `slipway/aws` orb: it pushes
// images to ECR, deploys Elastic Beanstalk environments and updates Lambda
// functions with aws-sdk-go-v2, from inside slipway rather than from the
// job's container, waiting for each to be healthy.
//
// A Runner is the engine's NativeRunner for the orb. Each step is
// configured the standard way (config.LoadDefaultConfig: the credential
// chain, the region, AWS_ENDPOINT_URL), overridden by the job's context
// variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL,
// and AWS_ROLE_ARN (with AWS_ROLE_EXTERNAL_ID) to assume a role first.
//
// What a step ships is reported as its outputs (see the Key functions),
// which the engine keeps with the release. On a rollback's deploy job
// (engine.JobRun.Restore set) the steps point the environment back at the
// artifacts the release recorded instead of building anything: the image
// is already in ECR, the Beanstalk version exists, the Lambda version is
// published.
package aws

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/slipway-ci/slipway/workflows/engine"
)

var _ engine.NativeRunner = (*Runner)(nil)

// Options configure a Runner. The zero value is usable, without Docker.
type Options struct {
	// Docker builds and pushes ecr-push's images: a client of the
	// engine slipway runs on (*client.Client). Without it ecr-push can
	// only find images already in ECR.
	Docker Docker
	// Logger receives the runner's own events, not the job's log;
	// slog.Default when nil.
	Logger *slog.Logger
	// LoadOptions are given to config.LoadDefaultConfig before the job's
	// overrides: the server's own choices (a shared config profile, a
	// retryer) or a test's.
	LoadOptions []func(*config.LoadOptions) error
	// Poll is how often a wait asks AWS how a deploy goes; DefaultPoll
	// when zero.
	Poll time.Duration
}

// DefaultPoll is how often waits poll AWS unless Options.Poll says.
const DefaultPoll = 3 * time.Second

// Runner carries out slipway/aws steps. It is safe for concurrent use:
// every step makes its own AWS clients.
type Runner struct {
	docker Docker
	log    *slog.Logger
	load   []func(*config.LoadOptions) error
	poll   time.Duration
}

// New returns a Runner.
func New(opts Options) *Runner {
	r := &Runner{docker: opts.Docker, log: opts.Logger, load: opts.LoadOptions, poll: opts.Poll}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.poll <= 0 {
		r.poll = DefaultPoll
	}
	return r
}

// RunNative carries out one step: ecr-push, beanstalk-deploy or
// lambda-update. Its parameters arrive expanded against the job's
// environment. A failure is an error that says what state AWS was left
// in; success returns what was shipped.
func (r *Runner) RunNative(ctx context.Context, run *engine.NativeRun) (engine.Outputs, error) {
	st := &step{r: r, run: run, p: &params{m: run.Step.Params}, log: run.Log}
	if st.log == nil {
		st.log = io.Discard
	}
	switch run.Step.Command {
	case "ecr-push":
		return st.ecrPush(ctx)
	case "beanstalk-deploy":
		return st.beanstalkDeploy(ctx)
	case "lambda-update":
		return st.lambdaUpdate(ctx)
	}
	return nil, fmt.Errorf("%s has no command %q (it has ecr-push, beanstalk-deploy and lambda-update)", engine.OrbAWS, run.Step.Command)
}

// step is one step being carried out.
type step struct {
	r   *Runner
	run *engine.NativeRun
	p   *params
	log io.Writer
}

// logf writes a line to the job's log.
func (s *step) logf(format string, args ...any) {
	fmt.Fprintf(s.log, format+"\n", args...)
}

// env is a variable of the step's environment.
func (s *step) env(name string) string { return s.run.Env[name] }

// restore is what the release a rollback goes back to recorded under
// key, and whether this step is part of such a rollback and has it.
func (s *step) restore(key string) (string, bool) {
	if s.run.Job == nil || s.run.Job.Restore == nil {
		return "", false
	}
	v, ok := s.run.Job.Restore[key]
	return v, ok && v != ""
}

// rollingBack reports whether the step is part of a rollback's deploy
// job that found a release to go back to.
func (s *step) rollingBack() bool {
	return s.run.Job != nil && s.run.Job.Restore != nil
}

// The keys of the outputs. A release gathers the outputs of all its deploy
// jobs into one map, so each key names what it is about.

// ECRKey is the key of what ecr-push reports about repository repo: "uri"
// (repositoryUri:tag) and "digest" ("sha256:...").
func ECRKey(repo, what string) string { return "ecr." + repo + "." + what }

// BeanstalkKey is the key of what beanstalk-deploy reports about
// environment env of application app: "version" (the label deployed) and
// "previous" (the label live before).
func BeanstalkKey(app, env, what string) string { return "beanstalk." + app + "/" + env + "." + what }

// LambdaKey is the key of what lambda-update reports about function fn:
// "version" (the version the alias points at) and "previous" (the one it
// pointed at before; empty when the alias was made).
func LambdaKey(fn, what string) string { return "lambda." + fn + "." + what }

// truncate cuts s to n bytes, saying so with an ellipsis.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("…")] + "…"
}

// params reads a step's parameters, collecting what is wrong with them.
type params struct {
	m    map[string]string
	errs []string
}

func (p *params) str(name string) string { return strings.TrimSpace(p.m[name]) }

func (p *params) required(name string) string {
	v := p.str(name)
	if v == "" {
		p.errs = append(p.errs, fmt.Sprintf("%s is required", name))
	}
	return v
}

// flag reads a boolean; missing is def.
func (p *params) flag(name string, def bool) bool {
	switch v := p.str(name); v {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	default:
		p.errs = append(p.errs, fmt.Sprintf("%s is %q, not true or false", name, v))
		return def
	}
}

// duration reads "20m", "90s" or a number of seconds; missing is def.
func (p *params) duration(name string, def time.Duration) time.Duration {
	v := p.str(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.errs = append(p.errs, fmt.Sprintf("%s is %q, not a duration such as 10m or 90s", name, v))
		return def
	}
	return d
}

// integer reads a positive integer; missing is def.
func (p *params) integer(name string, def int) int {
	v := p.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		p.errs = append(p.errs, fmt.Sprintf("%s is %q, not a positive integer", name, v))
		return def
	}
	return n
}

// list reads items separated by commas, spaces or newlines.
func (p *params) list(name string) []string {
	return strings.FieldsFunc(p.m[name], func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
}

// err is what is wrong with the parameters, as one error.
func (p *params) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("parameters: %s", strings.Join(p.errs, "; "))
}
