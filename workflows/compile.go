package workflows

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/slipway-ci/slipway/internal/lazyre"
)

// compiler turns job invocations into JobSpecs for one trigger's pipeline
// values.
type compiler struct {
	cfg      *Config
	pipeline map[string]*node
	specs    map[*node][]*paramSpec // parsed `parameters:` of each definition
	budget   *budget
}

// budget counts what one compilation builds against the config's Limits,
// as it builds it: each count is charged before the thing counted is made,
// so that a config whose expansion outgrows a limit is refused where it
// crosses it, having allocated about what the limit allows rather than
// what the config asks for. Once a limit is crossed every charge fails
// with the same error, and compilation stops.
type budget struct {
	limits                       Limits
	jobs, steps, requires, bytes int
	err                          error // the first limit crossed
}

func (b *budget) addJobs(n int, at *node) error {
	b.jobs += n
	if b.jobs > b.limits.MaxJobs {
		return b.exceeded(at, "more than %d jobs, counting each matrix instance (limits.max_jobs)", b.limits.MaxJobs)
	}
	return nil
}

func (b *budget) addSteps(n int, at *node) error {
	b.steps += n
	if b.steps > b.limits.MaxSteps {
		return b.exceeded(at, "more than %d steps, counting each command and the steps it expands to (limits.max_steps)", b.limits.MaxSteps)
	}
	return nil
}

func (b *budget) addRequires(n int, at *node) error {
	b.requires += n
	if b.requires > b.limits.MaxRequires {
		return b.exceeded(at, "more than %d requires edges, counting an edge to each instance of a required matrix (limits.max_requires)", b.limits.MaxRequires)
	}
	return nil
}

// addBytes charges n bytes of expanded config.
func (b *budget) addBytes(n int, at *node) error {
	b.bytes += n
	if b.bytes > b.limits.MaxBytes {
		return b.exceeded(at, "more than %d bytes to expand its jobs, commands, executors and parameters (limits.max_bytes)", b.limits.MaxBytes)
	}
	return nil
}

// What expanding a config allocates, as charged against MaxBytes.
const (
	// valueBytes is charged for each value that compilation reads from
	// an expanded definition or a substituted parameter: about what
	// reading it into a job allocates (an environment entry, a list
	// element, a value compared in a condition).
	valueBytes = 32
	// nodeBytes is the size of a node that interpolation copies or
	// makes; the slices of a copied list or map cost 8 bytes an entry.
	nodeBytes = int(unsafe.Sizeof(node{}))
	// entryBytes is an entry of a map from names that compilation makes
	// (an invocation's arguments, its bound parameters), measured.
	entryBytes = 64
)

// addValue charges a list or map substituted for a parameter as if it
// were copied, each time it is substituted: a parameter passed on twice
// at each level of nested commands costs what its expansion would,
// although its nodes are shared. The walk stops where the budget does.
func (b *budget) addValue(v, at *node) error {
	left := (b.limits.MaxBytes - b.bytes) / valueBytes
	n := countValues(v, left+1)
	return b.addBytes(n*valueBytes, at)
}

// countValues counts the values of a tree, shared subtrees once per
// reference, stopping once it has counted max.
func countValues(v *node, max int) int {
	n := 1
	for _, c := range v.keys {
		if n >= max {
			return n
		}
		n += countValues(c, max-n)
	}
	for _, c := range v.vals {
		if n >= max {
			return n
		}
		n += countValues(c, max-n)
	}
	for _, c := range v.items {
		if n >= max {
			return n
		}
		n += countValues(c, max-n)
	}
	return n
}

func (b *budget) exceeded(at *node, format string, args ...any) error {
	if b.err == nil {
		b.err = errorf(at, "plan too large: "+format, args...)
	}
	return b.err
}

// paramSpecs parses a definition's parameters once per plan: a matrix
// invokes the same job thousands of times.
func (cc *compiler) paramSpecs(def *node) ([]*paramSpec, error) {
	if s, ok := cc.specs[def]; ok {
		return s, nil
	}
	s, err := parseParamSpecs(def.get("parameters"))
	if err != nil {
		return nil, err
	}
	if cc.specs == nil {
		cc.specs = map[*node][]*paramSpec{}
	}
	cc.specs[def] = s
	return s, nil
}

// maxDepth bounds command-in-command expansion: a command that invokes
// itself is an error, not a stack overflow.
const maxDepth = 50

// element is a reusable job, command or executor, found from a scope.
type element struct {
	def     *node
	scope   *scope // where the definition's own references resolve
	native  *nativeOrb
	overlay *overlayElement // slipway's own meaning of the orb's def
	name    string          // the name it was invoked by
}

// lookup finds name ("x" or "orb/x") among a scope's jobs, commands or
// executors. Names from the config itself are tried last, so that an
// executor name passed into an orb as a parameter still resolves.
func (cc *compiler) lookup(sc *scope, kind, name string) (element, bool) {
	if orb, rest, ok := strings.Cut(name, "/"); ok {
		o := sc.orbs[orb]
		if o == nil && sc != cc.cfg.root {
			o = cc.cfg.root.orbs[orb]
		}
		if o == nil {
			return element{}, false
		}
		if o.native != nil {
			if _, ok := o.native.commands[rest]; ok && kind == "commands" {
				return element{scope: o, native: o.native, name: name}, true
			}
			return element{}, false
		}
		if d := o.elements(kind)[rest]; d != nil {
			return element{def: d, scope: o, name: name, overlay: o.overlays[kind+"/"+rest]}, true
		}
		return element{}, false
	}
	if d := sc.elements(kind)[name]; d != nil {
		return element{def: d, scope: sc, name: name}, true
	}
	if sc != cc.cfg.root {
		if d := cc.cfg.root.elements(kind)[name]; d != nil {
			return element{def: d, scope: cc.cfg.root, name: name}, true
		}
	}
	return element{}, false
}

func (s *scope) elements(kind string) map[string]*node {
	switch kind {
	case "jobs":
		return s.jobs
	case "commands":
		return s.commands
	}
	return s.executors
}

// invocationArgs splits an invocation's map into its arguments, leaving out
// the keys the caller handles itself. Each argument costs two map entries.
func invocationArgs(b *budget, n *node, reserved map[string]bool) (map[string]*node, map[string]*node, error) {
	if n.isNull() {
		return nil, nil, nil
	}
	if n.kind != mapNode {
		return nil, nil, errorf(n, "arguments must be a map, not %s", n.kind)
	}
	if err := b.addBytes(2*entryBytes*len(n.keys), n); err != nil {
		return nil, nil, err
	}
	args, keys := make(map[string]*node, len(n.keys)), make(map[string]*node, len(n.keys))
	for i, k := range n.keys {
		if reserved[k.value] {
			continue
		}
		args[k.value] = n.vals[i]
		keys[k.value] = k
	}
	return args, keys, nil
}

// job compiles one job invocation. pre and post are the workflow's
// pre-steps and post-steps, already interpolated.
func (cc *compiler) job(sc *scope, el element, at *node, args, argKeys map[string]*node, pre, post *node) (string, *JobSpec, error) {
	def := el.def
	if el.overlay != nil {
		// An orb's job that slipway does itself (circleci/slack's
		// on-hold) has nothing to run: slipway announces approvals in
		// the thread. Its arguments are checked all the same.
		specs, err := cc.paramSpecs(def)
		if err != nil {
			return "", nil, err
		}
		if _, err := bindParams(cc.budget, "job "+strconv.Quote(el.name), at, specs, args, argKeys); err != nil {
			return "", nil, err
		}
		return JobNoOp, nil, nil
	}
	if def.kind != mapNode {
		return "", nil, errorf(def, "job %q must be a map", el.name)
	}
	what := "job " + strconv.Quote(el.name)
	if err := checkKeys(def, "job", what); err != nil {
		return "", nil, err
	}
	specs, err := cc.paramSpecs(def)
	if err != nil {
		return "", nil, err
	}
	bound, err := bindParams(cc.budget, what, at, specs, args, argKeys)
	if err != nil {
		return "", nil, err
	}
	v := &vars{params: bound, pipeline: cc.pipeline, what: what, budget: cc.budget}
	body, err := v.interpolate(withoutKey(def, "parameters"))
	if err != nil {
		return "", nil, err
	}
	switch t := body.get("type").str(); t {
	case "", JobBuild:
	case JobNoOp, JobApproval:
		return t, nil, nil
	case "release", "lock", "unlock":
		return "", nil, errorf(body.get("type"), "job %q: type %s is not supported: %s jobs belong to CircleCI's deploys and locks services", el.name, t, t)
	default:
		return "", nil, errorf(body.get("type"), "job %q: unknown type %q", el.name, t)
	}
	spec := &JobSpec{WorkingDirectory: "~/project"}
	if err := cc.executor(el.scope, body, spec, what, 0); err != nil {
		return "", nil, err
	}
	if rc := body.get("resource_class"); rc != nil {
		spec.ResourceClass = rc.str()
	}
	if sh := body.get("shell"); sh != nil {
		spec.Shell = sh.str()
	}
	if wd := body.get("working_directory"); wd != nil {
		spec.WorkingDirectory = wd.str()
	}
	if env := body.get("environment"); env != nil {
		m, err := environment(env)
		if err != nil {
			return "", nil, err
		}
		if spec.Environment == nil {
			spec.Environment = m
		} else {
			for k, val := range m {
				spec.Environment[k] = val
			}
		}
	}
	if p := body.get("parallelism"); p != nil {
		n, ok := p.intValue()
		if !ok || n < 1 {
			return "", nil, errorf(p, "parallelism must be a positive integer")
		}
		spec.Parallelism = n
	}
	steps := body.get("steps")
	if steps == nil || steps.kind != seqNode {
		return "", nil, errorf(body, "job %q needs a list of steps", el.name)
	}
	for _, list := range []*node{pre, steps, post} {
		if list.isNull() {
			continue
		}
		if err := cc.steps(el.scope, list, &spec.Steps, 0); err != nil {
			return "", nil, err
		}
	}
	return JobBuild, spec, nil
}

func withoutKey(n *node, key string) *node {
	i := -1
	for j, k := range n.keys {
		if k.value == key {
			i = j
		}
	}
	if i < 0 {
		return n
	}
	c := *n
	c.keys = append(append([]*node(nil), n.keys[:i]...), n.keys[i+1:]...)
	c.vals = append(append([]*node(nil), n.vals[:i]...), n.vals[i+1:]...)
	return &c
}

// executorArgKeys are the keys of an executor invocation that are not
// arguments.
var executorArgKeys = map[string]bool{"name": true}

// executor fills spec from body's docker/machine/macos/executor keys. For
// a named executor, its resource_class, shell, working_directory and
// environment are defaults that the job's own keys override.
func (cc *compiler) executor(sc *scope, body *node, spec *JobSpec, what string, depth int) error {
	var kinds []*node
	for _, k := range []string{"docker", "machine", "macos", "executor"} {
		if kn := body.keyNode(k); kn != nil {
			kinds = append(kinds, kn)
		}
	}
	switch {
	case len(kinds) == 0:
		return errorf(body, "%s has no executor: give it docker, machine or executor", what)
	case len(kinds) > 1:
		return errorf(kinds[1], "%s has both %s and %s; give it one executor", what, kinds[0].value, kinds[1].value)
	}

	key := kinds[0]
	val := body.get(key.value)
	switch key.value {
	case "docker":
		return dockerImages(val, spec)
	case "machine":
		m := &MachineSpec{}
		if err := machine(val, m, what); err != nil {
			return err
		}
		if windowsImage(m.Image) {
			return errorf(val, "%s uses the Windows machine image %q, which slipway cannot provide: its steps are PowerShell for a Windows host", what, m.Image)
		}
		if !cc.cfg.allowMachine {
			return errorf(key, "%s uses the machine executor, which this server does not enable (it would run on the host)", what)
		}
		spec.Executor = ExecutorMachine
		spec.Machine = m
		// A machine's own resource_class and shell are the job's
		// defaults, as CircleCI reads them; the job's keys override
		// them.
		if m.ResourceClass != "" {
			spec.ResourceClass = m.ResourceClass
		}
		if m.Shell != "" {
			spec.Shell = m.Shell
		}
		return nil
	case "macos":
		return errorf(key, "%s uses the macos executor, which slipway cannot provide", what)
	}
	if depth > maxDepth {
		return errorf(key, "executors nested too deeply")
	}
	name, args, argKeys := "", map[string]*node{}, map[string]*node{}
	switch val.kind {
	case scalarNode:
		name = val.str()
	case mapNode:
		name = val.get("name").str()
		var err error
		if args, argKeys, err = invocationArgs(cc.budget, val, executorArgKeys); err != nil {
			return err
		}
	default:
		return errorf(val, "executor must be a name or a map with a name")
	}
	el, ok := cc.lookup(sc, "executors", name)
	if !ok || el.def == nil {
		return errorf(val, "%s: unknown executor %q", what, name)
	}
	if el.def.kind != mapNode {
		return errorf(el.def, "executor %q must be a map", name)
	}
	ewhat := "executor " + strconv.Quote(name)
	if err := checkKeys(el.def, "executor", ewhat); err != nil {
		return err
	}
	specs, err := cc.paramSpecs(el.def)
	if err != nil {
		return err
	}
	bound, err := bindParams(cc.budget, ewhat, val, specs, args, argKeys)
	if err != nil {
		return err
	}
	v := &vars{params: bound, pipeline: cc.pipeline, what: ewhat, budget: cc.budget}
	eb, err := v.interpolate(withoutKey(el.def, "parameters"))
	if err != nil {
		return err
	}
	if err := cc.executor(el.scope, eb, spec, ewhat, depth+1); err != nil {
		return relocate(err, val)
	}
	if rc := eb.get("resource_class"); rc != nil {
		spec.ResourceClass = rc.str()
	}
	if sh := eb.get("shell"); sh != nil {
		spec.Shell = sh.str()
	}
	if wd := eb.get("working_directory"); wd != nil {
		spec.WorkingDirectory = wd.str()
	}
	if env := eb.get("environment"); env != nil {
		if spec.Environment, err = environment(env); err != nil {
			return err
		}
	}
	return nil
}

// machine reads a machine executor: true, or a map with an image and
// the machine's own resource_class and shell.
func machine(val *node, m *MachineSpec, what string) error {
	if val.kind != mapNode {
		if b, ok := val.boolValue(); !ok || !b {
			return errorf(val, "machine must be true or a map with an image")
		}
		return nil
	}
	if err := checkKeys(val, "machine", what+": machine"); err != nil {
		return err
	}
	if e := val.get("enabled"); e != nil {
		if b, ok := e.boolValue(); ok && !b {
			return errorf(e, "%s: machine: enabled is false: give the job another executor", what)
		}
	}
	m.Image = val.get("image").str()
	m.ResourceClass = val.get("resource_class").str()
	m.Shell = val.get("shell").str()
	m.DockerLayerCaching, _ = val.get("docker_layer_caching").boolValue()
	return nil
}

// windowsImage reports whether a machine image is one of CircleCI's
// Windows images (windows-server-2022-gui, windows-server-2019-cuda,
// windows-default on server installations...).
func windowsImage(image string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(image)), "windows")
}

func dockerImages(val *node, spec *JobSpec) error {
	if val.kind != seqNode || len(val.items) == 0 {
		return errorf(val, "docker must be a list of images")
	}
	spec.Executor = ExecutorDocker
	for _, it := range val.items {
		if it.kind != mapNode {
			return errorf(it, "a docker entry is a map with an image")
		}
		if err := checkKeys(it, "docker image", "docker image"); err != nil {
			return err
		}
		img := DockerImage{}
		for i, k := range it.keys {
			v := it.vals[i]
			var err error
			switch k.value {
			case "image":
				img.Image = v.str()
			case "name":
				img.Name = v.str()
			case "user":
				img.User = v.str()
			case "entrypoint":
				img.Entrypoint, err = stringList(v)
			case "command":
				img.Command, err = stringList(v)
			case "environment":
				img.Environment, err = environment(v)
			case "auth":
				if v.kind != mapNode {
					return errorf(v, "auth must be a map with username and password")
				}
				img.Auth = &RegistryAuth{Username: v.get("username").str(), Password: v.get("password").str()}
			}
			if err != nil {
				return err
			}
		}
		if img.Image == "" {
			return errorf(it, "docker entry has no image")
		}
		spec.Docker = append(spec.Docker, img)
	}
	return nil
}

// stringList reads a string or a list of strings.
func stringList(n *node) ([]string, error) {
	switch n.kind {
	case scalarNode:
		if n.isNull() {
			return nil, nil
		}
		return []string{n.str()}, nil
	case seqNode:
		out := make([]string, 0, len(n.items))
		for _, it := range n.items {
			if it.kind != scalarNode {
				return nil, errorf(it, "want a string, not %s", it.kind)
			}
			out = append(out, it.str())
		}
		return out, nil
	}
	return nil, errorf(n, "want a string or a list of strings")
}

// environment reads an environment map (or a list of one-entry maps, which
// some configs use).
func environment(n *node) (map[string]string, error) {
	m := map[string]string{}
	if n.isNull() {
		return m, nil
	}
	add := func(mn *node) error {
		for i, k := range mn.keys {
			v := mn.vals[i]
			if v.kind != scalarNode {
				return errorf(v, "environment variable %q must be a scalar", k.value)
			}
			m[k.value] = v.str()
		}
		return nil
	}
	switch n.kind {
	case mapNode:
		return m, add(n)
	case seqNode:
		for _, it := range n.items {
			if it.kind == scalarNode {
				k, val, ok := strings.Cut(it.str(), "=")
				if !ok {
					return nil, errorf(it, "environment entry %q: want KEY=value", it.str())
				}
				m[k] = val
				continue
			}
			if it.kind != mapNode {
				return nil, errorf(it, "environment entries must be maps")
			}
			if err := add(it); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	return nil, errorf(n, "environment must be a map")
}

// steps compiles a list of steps into out. Lists nested in the list (a
// `steps` parameter substituted in place) are spliced.
func (cc *compiler) steps(sc *scope, list *node, out *[]Step, depth int) error {
	if depth > maxDepth {
		return errorf(list, "commands nested more than %d deep (does a command invoke itself?)", maxDepth)
	}
	if list.isNull() {
		return nil
	}
	if list.kind != seqNode {
		return errorf(list, "steps must be a list")
	}
	for _, it := range list.items {
		if err := cc.budget.addSteps(1, it); err != nil {
			return err
		}
		if it.kind == seqNode {
			if err := cc.steps(sc, it, out, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := cc.step(sc, it, out, depth); err != nil {
			return err
		}
	}
	return nil
}

func (cc *compiler) step(sc *scope, it *node, out *[]Step, depth int) error {
	var name string
	var nameNode, arg *node
	switch it.kind {
	case scalarNode:
		name, nameNode = it.str(), it
	case mapNode:
		if len(it.keys) != 1 {
			return errorf(it, "a step is a map with one key (the step or command name)")
		}
		name, nameNode, arg = it.keys[0].value, it.keys[0], it.vals[0]
	}
	switch name {
	case "run", "deploy":
		s, err := runStep(nameNode, arg)
		if err != nil {
			return err
		}
		*out = append(*out, Step{Run: s})
		return nil
	case "checkout":
		s := &CheckoutStep{}
		if arg != nil && !arg.isNull() {
			if err := stepArgs(arg, name); err != nil {
				return err
			}
			s.Path = arg.get("path").str()
			var err error
			if s.When, err = optionalWhen(arg.get("when")); err != nil {
				return err
			}
		}
		*out = append(*out, Step{Checkout: s})
		return nil
	case "when", "unless":
		if arg == nil || arg.kind != mapNode {
			return errorf(nameNode, "%s needs a map with condition and steps", name)
		}
		if err := checkKeys(arg, "when step", name); err != nil {
			return err
		}
		cond := arg.get("condition")
		if cond == nil {
			return errorf(arg, "%s step needs a condition", name)
		}
		ok, err := evalCondition(cond, nil, nil)
		if err != nil {
			return err
		}
		if ok == (name == "when") {
			return cc.steps(sc, arg.get("steps"), out, depth+1)
		}
		return nil
	case "save_cache":
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		s := &SaveCacheStep{Name: arg.get("name").str(), Key: arg.get("key").str(), When: WhenOnSuccess}
		paths, err := stringList(orEmpty(arg.get("paths")))
		if err != nil {
			return err
		}
		s.Paths = paths
		if s.Key == "" || len(s.Paths) == 0 {
			return errorf(arg, "save_cache needs a key and paths")
		}
		if s.When, err = stepWhen(arg.get("when")); err != nil {
			return err
		}
		*out = append(*out, Step{SaveCache: s})
		return nil
	case "restore_cache":
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		s := &RestoreCacheStep{Name: arg.get("name").str()}
		var err error
		if s.When, err = optionalWhen(arg.get("when")); err != nil {
			return err
		}
		if k := arg.get("key"); k != nil {
			s.Keys = append(s.Keys, k.str())
		}
		keys, err := stringList(orEmpty(arg.get("keys")))
		if err != nil {
			return err
		}
		s.Keys = append(s.Keys, keys...)
		if len(s.Keys) == 0 {
			return errorf(arg, "restore_cache needs a key or keys")
		}
		*out = append(*out, Step{RestoreCache: s})
		return nil
	case "persist_to_workspace":
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		paths, err := stringList(orEmpty(arg.get("paths")))
		if err != nil {
			return err
		}
		s := &PersistStep{Root: arg.get("root").str(), Paths: paths}
		if s.When, err = optionalWhen(arg.get("when")); err != nil {
			return err
		}
		if s.Root == "" || len(paths) == 0 {
			return errorf(arg, "persist_to_workspace needs a root and paths")
		}
		*out = append(*out, Step{PersistToWorkspace: s})
		return nil
	case "attach_workspace":
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		s := &AttachStep{At: arg.get("at").str()}
		var err error
		if s.When, err = optionalWhen(arg.get("when")); err != nil {
			return err
		}
		if s.At == "" {
			return errorf(nameNode, "attach_workspace needs at")
		}
		*out = append(*out, Step{AttachWorkspace: s})
		return nil
	case "store_artifacts":
		// `when` is accepted, as CircleCI does; artifacts and test
		// results are kept whatever the job's outcome.
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		if _, err := stepWhen(arg.get("when")); err != nil {
			return err
		}
		s := &StoreArtifactsStep{Path: arg.get("path").str(), Destination: arg.get("destination").str()}
		if reserved(s.Destination) && !sc.continuation {
			return errorf(arg.get("destination"), "store_artifacts: destination %q is where slipway keeps a continued config; choose another", s.Destination)
		}
		if s.Path == "" {
			return errorf(nameNode, "store_artifacts needs a path")
		}
		*out = append(*out, Step{StoreArtifacts: s})
		return nil
	case "store_test_results":
		if err := stepArgs(arg, name); err != nil {
			return err
		}
		if _, err := stepWhen(arg.get("when")); err != nil {
			return err
		}
		s := &StoreTestResultsStep{Path: arg.get("path").str()}
		if s.Path == "" {
			return errorf(nameNode, "store_test_results needs a path")
		}
		*out = append(*out, Step{StoreTestResults: s})
		return nil
	case "setup_remote_docker":
		s := &SetupRemoteDockerStep{}
		if arg != nil && !arg.isNull() {
			if err := stepArgs(arg, name); err != nil {
				return err
			}
			s.Version = arg.get("version").str()
			s.DockerLayerCaching, _ = arg.get("docker_layer_caching").boolValue()
			var err error
			if s.When, err = optionalWhen(arg.get("when")); err != nil {
				return err
			}
		}
		*out = append(*out, Step{SetupRemoteDocker: s})
		return nil
	case "add_ssh_keys":
		s := &AddSSHKeysStep{}
		if arg != nil && !arg.isNull() {
			if err := stepArgs(arg, name); err != nil {
				return err
			}
			fps, err := stringList(orEmpty(arg.get("fingerprints")))
			if err != nil {
				return err
			}
			s.Fingerprints = fps
			if s.When, err = optionalWhen(arg.get("when")); err != nil {
				return err
			}
		}
		*out = append(*out, Step{AddSSHKeys: s})
		return nil
	case "steps":
		// `- steps: << parameters.x >>` splices a steps parameter in place.
		return cc.steps(sc, arg, out, depth+1)
	case "":
		return errorf(it, "empty step")
	}
	return cc.command(sc, name, nameNode, arg, out, depth)
}

// relocate points a problem found inside an orb's definition at the
// place of the config that used it, saying where in the orb it is.
func relocate(err error, at *node) error {
	e, ok := err.(*Error)
	if !ok || at == nil || e.File == at.file {
		return err
	}
	return errorf(at, "%s (%s)", e.Msg, e.Error()[:len(e.Error())-len(e.Msg)-2])
}

// emptyOrb explains a missing element of an orb declared inline and
// empty: the orb-tools development kit fills such an orb in with the
// orb being developed when it continues the pipeline.
func (cc *compiler) emptyOrb(sc *scope, name string) string {
	alias, _, ok := strings.Cut(name, "/")
	if !ok {
		return ""
	}
	o := sc.orbs[alias]
	if o == nil {
		o = cc.cfg.root.orbs[alias]
	}
	if o == nil || o.native != nil || len(o.jobs)+len(o.commands)+len(o.executors)+len(o.orbs) > 0 {
		return ""
	}
	return fmt.Sprintf(": orb %q is declared inline and empty ({}), to be filled in with an orb's source when the pipeline is continued (circleci/orb-tools' continue job does so); slipway runs configs as written", alias)
}

// reserved reports whether an artifacts destination is slipway's own.
func reserved(destination string) bool {
	d := path.Clean("/" + destination)
	return d == "/.slipway" || strings.HasPrefix(d, "/.slipway/")
}

// envReference matches a value that is one environment variable.
var envReference = lazyre.New(`^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$`)

// command expands a command invocation into its steps.
func (cc *compiler) command(sc *scope, name string, at, arg *node, out *[]Step, depth int) error {
	el, ok := cc.lookup(sc, "commands", name)
	if !ok {
		if orb, _, isOrb := strings.Cut(name, "/"); isOrb && sc.orbs[orb] == nil && cc.cfg.root.orbs[orb] == nil {
			return errorf(at, "unknown step %q: no orb named %q is declared in orbs", name, orb)
		}
		return errorf(at, "unknown step or command %q%s", name, cc.emptyOrb(sc, name))
	}
	args, argKeys, err := invocationArgs(cc.budget, arg, nil)
	if err != nil {
		return err
	}
	what := "command " + strconv.Quote(name)
	if ov := el.overlay; ov != nil && ov.refused != "" {
		return errorf(at, "%s is not supported: %s", what, ov.refused)
	}
	if el.native != nil || el.overlay != nil {
		cmd := name[strings.Index(name, "/")+1:]
		var specs []*paramSpec
		ns := &NativeStep{Command: cmd, Params: map[string]string{}, When: WhenOnSuccess}
		if el.native != nil {
			specs, ns.Orb = el.native.commands[cmd], el.native.name
		} else {
			// The orb's own declarations, slipway's meaning.
			if specs, err = cc.paramSpecs(el.def); err != nil {
				return err
			}
			ns.Orb, ns.Command = el.overlay.orb, el.overlay.command
		}
		bound, err := bindParams(cc.budget, what, at, specs, args, argKeys)
		if err != nil {
			return err
		}
		for k, v := range bound {
			if v.kind != scalarNode {
				return errorf(v, "%s: parameter %q must be a scalar", what, k)
			}
			ns.Params[k] = v.str()
		}
		if ev := ns.Params["event"]; ev == "fail" {
			ns.When = WhenOnFail
		} else if ev == "always" {
			ns.When = WhenAlways
		}
		if el.overlay != nil && envReference.MatchString(ns.Params["channel"]) {
			// circleci/slack's channel defaults to $SLACK_DEFAULT_CHANNEL,
			// which means the project's channel: the app's, in slipway.
			ns.Params["channel"] = ""
		}
		*out = append(*out, Step{Native: ns})
		return nil
	}
	def := el.def
	if def.kind != mapNode {
		return errorf(def, "command %q must be a map with steps", name)
	}
	if el.scope.continuation && strings.HasSuffix(name, "/continue") && !cc.cfg.setup {
		return errorf(at, "%s continues a setup pipeline: this config has no setup: true (CircleCI's dynamic configuration)", what)
	}
	if err := checkKeys(def, "command", "command "+name); err != nil {
		return err
	}
	specs, err := cc.paramSpecs(def)
	if err != nil {
		return err
	}
	bound, err := bindParams(cc.budget, what, at, specs, args, argKeys)
	if err != nil {
		return err
	}
	v := &vars{params: bound, pipeline: cc.pipeline, what: what, budget: cc.budget}
	steps, err := v.interpolate(def.get("steps"))
	if err != nil {
		return err
	}
	if steps == nil {
		return errorf(def, "command %q has no steps", name)
	}
	return cc.steps(el.scope, steps, out, depth+1)
}

func orEmpty(n *node) *node {
	if n == nil {
		return &node{kind: seqNode}
	}
	return n
}

// stepArgs checks the map of a built-in step's arguments against the
// keys CircleCI allows it.
func stepArgs(n *node, step string) error {
	if n == nil || n.isNull() {
		return errorf(n, "%s needs arguments", step)
	}
	if n.kind != mapNode {
		return errorf(n, "%s takes a map, not %s", step, n.kind)
	}
	return checkKeys(n, step, step)
}

// optionalWhen reads the `when` of a step whose default is left empty
// in the plan (it means WhenOnSuccess).
func optionalWhen(n *node) (string, error) {
	if n == nil {
		return "", nil
	}
	return stepWhen(n)
}

func stepWhen(n *node) (string, error) {
	if n.isNull() {
		return WhenOnSuccess, nil
	}
	switch w := n.str(); w {
	case WhenOnSuccess, WhenOnFail, WhenAlways:
		return w, nil
	}
	return "", errorf(n, "when must be on_success, on_fail or always, not %q", n.str())
}

func runStep(at, arg *node) (*RunStep, error) {
	if arg == nil || arg.isNull() {
		return nil, errorf(at, "run needs a command")
	}
	s := &RunStep{When: WhenOnSuccess}
	if arg.kind == scalarNode {
		s.Command = arg.str()
		return s, nil
	}
	if arg.kind != mapNode {
		return nil, errorf(arg, "run takes a command or a map")
	}
	if err := checkKeys(arg, "run", "run"); err != nil {
		return nil, err
	}
	for i, k := range arg.keys {
		v := arg.vals[i]
		var err error
		switch k.value {
		case "command":
			s.Command = v.str()
		case "name":
			s.Name = v.str()
		case "shell":
			s.Shell = v.str()
		case "working_directory":
			s.WorkingDirectory = v.str()
		case "environment":
			s.Environment, err = environment(v)
		case "background":
			b, ok := v.boolValue()
			if !ok {
				return nil, errorf(v, "background must be a boolean")
			}
			s.Background = b
		case "no_output_timeout":
			s.NoOutputTimeout, err = duration(v)
		case "when":
			s.When, err = stepWhen(v)
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Command == "" {
		return nil, errorf(arg, "run needs a command")
	}
	return s, nil
}

// duration reads CircleCI durations: "10m", "1h30m", "90s", or a bare
// number of seconds.
func duration(n *node) (time.Duration, error) {
	s := strings.TrimSpace(n.str())
	if secs, err := strconv.Atoi(s); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errorf(n, "bad duration %q (want 10m, 1h30m, 90s)", s)
	}
	return d, nil
}
