package workflows

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// LoadOptions say where orbs come from and what the operator allows.
type LoadOptions struct {
	// OrbDirs are folders searched, in order, for vendored orbs: the
	// repository's .circleci/orbs, then the server's orb folder.
	OrbDirs []string
	// Registry answers for the orbs that are not vendored; nil when
	// there is none (then only vendored and cached orbs are found).
	Registry OrbRegistry
	// Cache keeps the registry's answers; nil to keep nothing.
	Cache OrbCache
	// AllowMachine lets `machine` jobs run on the host.
	AllowMachine bool
	// Limits bound what compiling one plan may build.
	Limits Limits
}

// Limits bound the plan that one compilation builds: the config's
// workflows for one trigger (Plan), or all of them whatever their
// conditions and filters (Validate). Commands, parameters and matrices let
// a few hundred bytes of config expand without end; compilation counts
// what it builds as it builds it, and refuses a config at the construct
// where it crosses a limit, having spent about what the limits allow
// rather than what the config asks for. A field left zero takes its
// default.
type Limits struct {
	// MaxJobs bounds the jobs of a plan, over all its workflows; each
	// matrix instance is a job. A job costs about 2.5 KB to compile,
	// besides its steps and text.
	MaxJobs int
	// MaxSteps bounds the steps compiled for a plan, over all its jobs.
	// Each entry of a steps list counts: a command invocation as well as
	// the steps it expands to, a when or unless step, a spliced steps
	// parameter. A step costs about 250 bytes, besides its text.
	MaxSteps int
	// MaxRequires bounds the requires edges of a plan. Requiring a matrix
	// by its alias makes an edge to each of its instances, so a matrix
	// that requires another has instances × instances edges. An edge
	// costs about 85 bytes.
	MaxRequires int
	// MaxBytes bounds what expanding the config for a plan allocates:
	// the text that << >> interpolation renders, the values it copies,
	// the arguments it binds, and 32 bytes for each value of a definition
	// it expands or of a list or map it substitutes, counted again at
	// each use.
	MaxBytes int
}

// The default limits. The largest config of the corpus in
// shared/corpus/circleci (snyk/cli, 70 KB) validates with 66 jobs, 904
// steps, 94 requires edges and 0.8 MB of expansion, under 2% of each
// limit (TestLimitsCorpusHeadroom prints the table). A plan close to all
// four at once is accepted having allocated about 125 MB, its process
// peaking at about 95 MB resident (TestLimitsDefaults); a config refused
// at any of them is refused having allocated under 64 MB in each of
// Validate and Plan (TestLimitsRefuseExpansion). MaxJobs admits two
// matrices of the largest size a matrix may have.
const (
	DefaultMaxJobs     = 20_000
	DefaultMaxSteps    = 200_000
	DefaultMaxRequires = 100_000
	DefaultMaxBytes    = 64 << 20
)

// withDefaults fills in the zero fields.
func (l Limits) withDefaults() Limits {
	for _, f := range []struct {
		v   *int
		def int
	}{{&l.MaxJobs, DefaultMaxJobs}, {&l.MaxSteps, DefaultMaxSteps}, {&l.MaxRequires, DefaultMaxRequires}, {&l.MaxBytes, DefaultMaxBytes}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// Config is a loaded config file, ready to be planned for triggers. It is
// read-only after Load, so one Config may plan many triggers at once.
type Config struct {
	file           string
	version        string
	root           *scope
	pipelineParams []*paramSpec
	workflows      []*workflowDef
	allowMachine   bool
	limits         Limits
	setup          bool
	orbs           []OrbVersion
}

// scope holds the reusable elements visible from one place: the config's
// own, or an orb's (where its elements need no prefix).
type scope struct {
	name      string // "" for the config, the orb's local name otherwise
	jobs      map[string]*node
	commands  map[string]*node
	executors map[string]*node
	orbs      map[string]*scope
	native    *nativeOrb
	// overlays are the elements of a fetched or vendored orb that
	// slipway carries out itself, by "commands/name" or "jobs/name".
	overlays map[string]*overlayElement
	// continuation marks circleci/continuation, whose steps may keep
	// artifacts where the engine looks for a continued config.
	continuation bool
}

type workflowDef struct {
	name string
	key  *node
	body *node // nil for the implicit workflow of a lone `build` job
}

// Load parses and checks a config file. name is used in error positions.
// It is LoadContext without a deadline.
func Load(name string, src []byte, opts LoadOptions) (*Config, error) {
	return LoadContext(context.Background(), name, src, opts)
}

// LoadContext parses and checks a config file, resolving its orbs: ctx
// bounds what asking the orb registry may take.
func LoadContext(ctx context.Context, name string, src []byte, opts LoadOptions) (*Config, error) {
	root, anchored, err := parseYAML(name, src)
	if err != nil {
		return nil, err
	}
	if root.kind != mapNode {
		return nil, errorf(root, "a config is a map with version, jobs and workflows")
	}
	c := &Config{file: name, allowMachine: opts.AllowMachine, limits: opts.Limits.withDefaults()}
	for _, k := range root.keys {
		r, known := placeKeys["config"][k.value]
		switch {
		case !known && !anchored[k.value]:
			return nil, errorf(k, "unknown top-level key %q", k.value)
		case r.refused != "":
			return nil, errorf(k, "%s is not supported: %s", k.value, r.refused)
		}
	}
	v := root.get("version")
	if v == nil {
		return nil, errorf(root, "missing version (slipway runs version 2 and 2.1 configs)")
	}
	switch v.str() {
	case "2", "2.0", "2.1":
		c.version = v.str()
	default:
		return nil, errorf(v, "unsupported version %q (slipway runs version 2 and 2.1 configs)", v.str())
	}
	if s := root.get("setup"); s != nil {
		b, ok := s.boolValue()
		if !ok {
			return nil, errorf(s, "setup must be true or false")
		}
		if b && c.version != "2.1" {
			return nil, errorf(root.keyNode("setup"), "setup: true needs version 2.1")
		}
		c.setup = b
	}
	if c.version != "2.1" {
		for _, k := range []string{"orbs", "commands", "executors", "parameters"} {
			if kn := root.keyNode(k); kn != nil {
				return nil, errorf(kn, "%s needs version 2.1", k)
			}
		}
	}
	ol := orbLoader{dirs: opts.OrbDirs, registry: opts.Registry, cache: opts.Cache}
	c.root, err = ol.scope(ctx, "", root, 0)
	if err != nil {
		return nil, err
	}
	c.orbs = ol.used
	if c.pipelineParams, err = parseParamSpecs(root.get("parameters")); err != nil {
		return nil, err
	}
	wfs := root.get("workflows")
	switch {
	case wfs != nil && wfs.kind == mapNode:
		for i, k := range wfs.keys {
			if k.value == "version" {
				continue
			}
			if wfs.vals[i].kind != mapNode {
				return nil, errorf(wfs.vals[i], "workflow %q must be a map with jobs", k.value)
			}
			c.workflows = append(c.workflows, &workflowDef{name: k.value, key: k, body: wfs.vals[i]})
		}
	case wfs != nil && !wfs.isNull():
		return nil, errorf(wfs, "workflows must be a map")
	case c.root.jobs["build"] != nil:
		// CircleCI runs a lone `build` job when there are no workflows.
		c.workflows = append(c.workflows, &workflowDef{name: "workflow", key: root.keyNode("jobs")})
	}
	if len(c.workflows) == 0 {
		return nil, errorf(root, "no workflows, and no `build` job to run")
	}
	return c, nil
}

// definitions reads one of the jobs/commands/executors maps.
func definitions(n *node, what string) (map[string]*node, error) {
	m := map[string]*node{}
	if n.isNull() {
		return m, nil
	}
	if n.kind != mapNode {
		return nil, errorf(n, "%s must be a map", what)
	}
	for i, k := range n.keys {
		if strings.Contains(k.value, "/") {
			return nil, errorf(k, "%s name %q cannot contain /", what, k.value)
		}
		m[k.value] = n.vals[i]
	}
	return m, nil
}

// Validate compiles every workflow and job of the config, whatever the
// filters, for a push of the default branch with default parameters; it
// returns all the problems found.
func (c *Config) Validate() error {
	t := Trigger{Branch: "main", Revision: strings.Repeat("0", 40)}
	_, err := c.plan(t, true)
	return err
}

// Plan decides which workflows and jobs run for t.
func (c *Config) Plan(t Trigger) (*Plan, error) {
	return c.plan(t, false)
}

// Orbs lists the orbs the config uses, the orbs they import included,
// each once, as they were resolved.
func (c *Config) Orbs() []OrbVersion { return c.orbs }

// Setup reports whether the config is a setup config (`setup: true`),
// whose pipeline may be continued with another config.
func (c *Config) Setup() bool { return c.setup }

// WorkflowNames lists the config's workflows in file order.
func (c *Config) WorkflowNames() []string {
	names := make([]string, len(c.workflows))
	for i, w := range c.workflows {
		names[i] = w.name
	}
	return names
}

// projectSlug is CircleCI's slug of a project, <vcs>/<org>/<repo>
// ("gh/acme/backend"), from its git URL; empty when there is none.
func projectSlug(typ, gitURL string) string {
	raw := strings.TrimSuffix(gitURL, ".git")
	var path string
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		path = strings.Trim(u.Path, "/")
	} else if _, p, ok := strings.Cut(raw, ":"); ok {
		path = p // git@github.com:acme/backend
	}
	vcs := map[string]string{"github": "gh", "bitbucket": "bb"}[typ]
	if vcs == "" || strings.Count(path, "/") != 1 {
		return ""
	}
	return vcs + "/" + path
}

// pipelineValues builds the `pipeline.*` values of a trigger, checking the
// given pipeline parameters against the declarations.
func (c *Config) pipelineValues(t Trigger) (map[string]*node, error) {
	at := &node{file: c.file}
	str := func(s string) *node { return scalar(s, at) }
	typ := t.ProjectType
	if typ == "" {
		typ = "github"
	}
	src := t.Source
	if src == "" {
		src = "webhook"
	}
	v := map[string]*node{
		"id":                 str(t.ID),
		"number":             typedScalar(t.Number),
		"project.git_url":    str(t.ProjectURL),
		"project.type":       str(typ),
		"project.slug":       str(projectSlug(typ, t.ProjectURL)),
		"git.tag":            str(t.Tag),
		"git.branch":         str(t.Branch),
		"git.revision":       str(t.Revision),
		"git.base_revision":  str(t.BaseRevision),
		"trigger_source":     str(src),
		"schedule.name":      str(""),
		"schedule.id":        str(""),
		"deploy.environment": str(""),
		"deploy.version":     str(""),
		"deploy.rollback":    typedScalar(false),
	}
	if d := t.Deploy; d != nil {
		v["deploy.environment"] = str(d.Environment)
		v["deploy.version"] = str(d.Version)
		v["deploy.rollback"] = typedScalar(d.Rollback)
	}
	declared := map[string]*paramSpec{}
	for _, p := range c.pipelineParams {
		declared[p.name] = p
	}
	names := make([]string, 0, len(t.Parameters))
	for k := range t.Parameters {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, ok := declared[k]
		if !ok {
			return nil, &Error{File: c.file, Msg: fmt.Sprintf("unknown pipeline parameter %q", k)}
		}
		val := typedScalar(t.Parameters[k])
		if p.typ == "string" || p.typ == "enum" || p.typ == "env_var_name" {
			if s, ok := t.Parameters[k].(string); ok {
				val = str(s)
			}
		}
		val.file = c.file
		if err := p.check(val); err != nil {
			return nil, err
		}
		v["parameters."+k] = val
	}
	for _, p := range c.pipelineParams {
		if _, ok := v["parameters."+p.name]; ok {
			continue
		}
		if p.def == nil {
			if p.typ == "steps" {
				v["parameters."+p.name] = &node{kind: seqNode, file: c.file}
				continue
			}
			return nil, errorf(p.at, "pipeline parameter %q has no default and was not given", p.name)
		}
		v["parameters."+p.name] = p.def
	}
	return v, nil
}
