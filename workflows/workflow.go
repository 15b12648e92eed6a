package workflows

import (
	"container/heap"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/slipway-ci/slipway/internal/lazyre"
)

// entryKeys are the keys of a workflow's job entry that belong to the
// workflow rather than to the job's parameters.
var entryKeys = keySet("workflow job")

// keySet is the set of a place's keys.
func keySet(place string) map[string]bool {
	m := map[string]bool{}
	for k := range placeKeys[place] {
		m[k] = true
	}
	return m
}

var requireStatuses = []string{StatusSuccess, StatusFailed, StatusCanceled, StatusNotRun, StatusUnauthorized, StatusTerminal}

// instance is one job of a workflow before the DAG is built.
type instance struct {
	job      *PlannedJob
	at       *node  // the entry, for positions
	entry    int    // the entry's index in the workflow's jobs
	alias    string // matrix alias; empty outside a matrix
	requires []*requirement
	filters  *filters
	index    int
	// The job to compile and the entry's settings; el.def and el.native
	// are nil for approval and no-op entries, and once compiled.
	el   element
	args *node
}

type requirement struct {
	name     string
	statuses []string
	at       *node
}

func (c *Config) plan(t Trigger, all bool) (*Plan, error) {
	p, _, err := c.compile(t, all)
	return p, err
}

// compile plans for t, or for every workflow and job when all is set, and
// says what the plan cost.
func (c *Config) compile(t Trigger, all bool) (*Plan, *budget, error) {
	pv, err := c.pipelineValues(t)
	if err != nil {
		return nil, nil, err
	}
	cc := &compiler{cfg: c, pipeline: pv, budget: &budget{limits: c.limits}}
	plan := &Plan{Workflows: []*PlannedWorkflow{}}
	var errs errorSet
	for _, wf := range c.workflows {
		pw, err := cc.workflow(wf, t, all)
		if err != nil {
			errs.add(err)
			if cc.budget.err != nil {
				// Past a limit every charge fails: going on would
				// only repeat it.
				break
			}
			continue
		}
		if pw != nil && len(pw.Jobs) > 0 {
			plan.Workflows = append(plan.Workflows, pw)
		}
	}
	if err := errs.err(); err != nil {
		return nil, cc.budget, err
	}
	plan.Setup = c.setup
	if c.setup && !all && len(plan.Workflows) > 1 {
		names := make([]string, len(plan.Workflows))
		for i, w := range plan.Workflows {
			names[i] = w.Name
		}
		return nil, cc.budget, &Error{File: c.file, Msg: fmt.Sprintf("a setup config runs one workflow for a pipeline (CircleCI's rule), and %d would run: %s", len(names), strings.Join(names, ", "))}
	}
	return plan, cc.budget, nil
}

// workflow plans one workflow; nil when its conditions exclude it.
//
// Its entries are expanded into instances first, then their requires are
// linked, and only then are their jobs compiled: the counts of jobs and
// requires edges are known, and checked against the budget, before the
// bulk of the work. Problems are reported as if each entry were compiled
// in turn and linked last: an entry's first problem, in file order, and
// problems of linking only when every job compiled.
func (cc *compiler) workflow(wf *workflowDef, t Trigger, all bool) (*PlannedWorkflow, error) {
	pw := &PlannedWorkflow{Name: wf.name, Jobs: []*PlannedJob{}}
	if wf.body == nil {
		if err := cc.budget.addJobs(1, wf.key); err != nil {
			return nil, err
		}
		el, _ := cc.lookup(cc.cfg.root, "jobs", "build")
		typ, spec, err := cc.job(cc.cfg.root, el, wf.key, nil, nil, nil, nil)
		if err != nil {
			return nil, err
		}
		pw.Jobs = append(pw.Jobs, &PlannedJob{Name: "build", Job: "build", Type: typ, Requires: map[string][]string{}, Context: []string{}, Spec: spec})
		return pw, nil
	}
	pipe := &vars{pipeline: cc.pipeline, budget: cc.budget}
	body, err := pipe.interpolateExcept(wf.body, "jobs")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(body, "workflow", "workflow "+strconv.Quote(wf.name)); err != nil {
		return nil, err
	}
	run := true
	for _, key := range []string{"when", "unless"} {
		if cond := body.get(key); cond != nil {
			ok, err := evalCondition(cond, wf.body.get(key), pipelineEnv(cc.pipeline))
			if err != nil {
				return nil, err
			}
			if ok != (key == "when") {
				run = false
			}
		}
	}
	if tr := body.get("triggers"); tr != nil {
		if err := checkTriggers(tr); err != nil {
			return nil, err
		}
		// A scheduled workflow runs on its schedule, never on a push.
		run = false
	}
	if !run && !all {
		return nil, nil
	}
	jobs := wf.body.get("jobs")
	if jobs == nil || jobs.kind != seqNode || len(jobs.items) == 0 {
		return nil, errorf(wf.key, "workflow %q needs a list of jobs", wf.name)
	}
	var insts []*instance
	entryErrs := make([]error, len(jobs.items)) // each entry's first problem
	failed := func() error {
		var errs errorSet
		for _, err := range entryErrs {
			if err != nil {
				errs.add(err)
			}
		}
		return errs.err()
	}
	declared := true
	for i, entry := range jobs.items {
		is, err := cc.entry(entry, i)
		if err != nil {
			entryErrs[i], declared = err, false
			if cc.budget.err != nil {
				return nil, failed()
			}
			continue
		}
		insts = append(insts, is...)
	}
	var linkErr error
	if declared {
		nameInstances(insts)
		if linkErr = link(wf, insts, cc.budget); cc.budget.err != nil {
			return nil, cc.budget.err
		}
	}
	ok := declared
	for _, in := range insts {
		if entryErrs[in.entry] != nil {
			continue
		}
		if err := cc.compile(in); err != nil {
			entryErrs[in.entry], ok = err, false
			if cc.budget.err != nil {
				break
			}
		}
	}
	if !ok {
		return nil, failed()
	}
	if linkErr != nil {
		return nil, linkErr
	}
	if !all {
		insts = filterInstances(insts, t)
	}
	pw.Jobs = order(insts)
	return pw, nil
}

// interpolateExcept interpolates a map's values, leaving one key alone.
func (v *vars) interpolateExcept(n *node, skip string) (*node, error) {
	c := *n
	c.vals = make([]*node, len(n.vals))
	for i, k := range n.keys {
		if k.value == skip {
			c.vals[i] = n.vals[i]
			continue
		}
		var err error
		if c.vals[i], err = v.interpolate(n.vals[i]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func checkTriggers(tr *node) error {
	if tr.kind != seqNode {
		return errorf(tr, "triggers must be a list")
	}
	for _, it := range tr.items {
		s := it.get("schedule")
		if s == nil {
			return errorf(it, "only schedule triggers are supported")
		}
		if err := checkKeys(it, "schedule trigger", "trigger"); err != nil {
			return err
		}
		if s.kind != mapNode || s.get("cron") == nil {
			return errorf(s, "schedule needs a cron")
		}
		if err := checkKeys(s, "schedule", "schedule"); err != nil {
			return err
		}
	}
	return nil
}

// entry expands item pos of a workflow's jobs list: one instance, or one
// per matrix combination. Their jobs are compiled later, by compile.
func (cc *compiler) entry(entry *node, pos int) ([]*instance, error) {
	var name string
	var nameNode, args *node
	switch entry.kind {
	case scalarNode:
		name, nameNode = entry.str(), entry
	case mapNode:
		if len(entry.keys) != 1 {
			return nil, errorf(entry, "a workflow job is a name, or a map from the name to its settings")
		}
		name, nameNode, args = entry.keys[0].value, entry.keys[0], entry.vals[0]
		if !args.isNull() && args.kind != mapNode {
			return nil, errorf(args, "job %q: settings must be a map", name)
		}
	default:
		return nil, errorf(entry, "a workflow job is a name or a map")
	}
	if args != nil {
		for _, k := range args.keys {
			if r := placeKeys["workflow job"][k.value]; r.refused != "" {
				return nil, errorf(k, "job %q: %s is not supported: %s", name, k.value, r.refused)
			}
		}
	}
	pipe := &vars{pipeline: cc.pipeline, budget: cc.budget}
	m := args.get("matrix")
	if m == nil {
		if err := cc.budget.addJobs(1, nameNode); err != nil {
			return nil, err
		}
		a, err := pipe.interpolate(args)
		if err != nil {
			return nil, err
		}
		inst, err := cc.instance(name, nameNode, a)
		if err != nil {
			return nil, err
		}
		inst.entry = pos
		return []*instance{inst}, nil
	}
	m, err := pipe.interpolate(m)
	if err != nil {
		return nil, err
	}
	x, err := matrix(m, name)
	if err != nil {
		return nil, err
	}
	if err := cc.budget.addJobs(len(x.kept), nameNode); err != nil {
		return nil, err
	}
	base := withoutKey(args, "matrix")
	// One map holds each combination in turn: it is read only while the
	// entry is interpolated.
	combo := make(map[string]*node, len(x.params))
	mv := &vars{pipeline: cc.pipeline, matrix: combo, budget: cc.budget}
	// The keys added to each instance's settings are shared.
	keys := make([]*node, len(x.params))
	for i, p := range x.params {
		keys[i] = scalar(p, m)
	}
	nameKey := scalar("name", nameNode)
	out := make([]*instance, 0, len(x.kept))
	for _, c := range x.kept {
		for i, p := range x.params {
			combo[p] = x.value(c, i)
		}
		a, err := mv.interpolate(base)
		if err != nil {
			return nil, err
		}
		// The instance's own settings: the entry's, then the matrix's
		// values as arguments, then the name, unless the entry gives one.
		n := len(a.keys) + len(x.params) + 1
		if err := cc.budget.addBytes(nodeBytes+16*n, m); err != nil {
			return nil, err
		}
		own := *a
		own.keys = append(make([]*node, 0, n), a.keys...)
		own.vals = append(make([]*node, 0, n), a.vals...)
		for i, p := range x.params {
			own.keys = append(own.keys, keys[i])
			own.vals = append(own.vals, combo[p])
		}
		if own.get("name") == nil {
			parts := make([]string, 0, len(x.params)+1)
			parts = append(parts, name)
			size := nodeBytes + len(name)
			for _, p := range x.params {
				parts = append(parts, combo[p].str())
				size += 1 + len(combo[p].str())
			}
			if err := cc.budget.addBytes(size, nameNode); err != nil {
				return nil, err
			}
			own.keys = append(own.keys, nameKey)
			own.vals = append(own.vals, scalar(strings.Join(parts, "-"), nameNode))
		}
		inst, err := cc.instance(name, nameNode, &own)
		if err != nil {
			return nil, err
		}
		inst.alias, inst.entry = x.alias, pos
		out = append(out, inst)
	}
	return out, nil
}

// maxMatrix bounds a matrix's combinations.
const maxMatrix = 10000

// expansion is a matrix's combinations: numbered in CircleCI's order,
// the last parameter varying fastest, and kept unless excluded.
type expansion struct {
	alias  string
	params []string
	values [][]*node // each parameter's values
	stride []int     // combination c has value c / stride[i] % len(values[i]) of parameter i
	kept   []int
}

// value is parameter i's value in combination c.
func (x *expansion) value(c, i int) *node {
	return x.values[i][c/x.stride[i]%len(x.values[i])]
}

// matrix reads a matrix stanza.
func matrix(m *node, job string) (*expansion, error) {
	if m.kind != mapNode {
		return nil, errorf(m, "matrix must be a map with parameters")
	}
	if err := checkKeys(m, "matrix", "matrix"); err != nil {
		return nil, err
	}
	x := &expansion{alias: job}
	if a := m.get("alias"); a != nil {
		x.alias = a.str()
	}
	params := m.get("parameters")
	if params == nil || params.kind != mapNode || len(params.keys) == 0 {
		return nil, errorf(m, "matrix needs parameters")
	}
	total := 1
	for i, k := range params.keys {
		vals := params.vals[i]
		if vals.kind != seqNode || len(vals.items) == 0 {
			return nil, errorf(vals, "matrix parameter %q needs a list of values", k.value)
		}
		if slices.Contains(x.params, k.value) {
			// Only interpolated keys can repeat.
			return nil, errorf(k, "matrix parameter %q is named twice", k.value)
		}
		x.params = append(x.params, k.value)
		x.values = append(x.values, vals.items)
		total *= len(vals.items)
		if total > maxMatrix {
			return nil, errorf(m, "matrix has more than %d combinations", maxMatrix)
		}
	}
	excluded, class, err := matrixExclusions(m.get("exclude"), x.params, x.values)
	if err != nil {
		return nil, err
	}
	x.stride = make([]int, len(x.values))
	for i, s := len(x.values)-1, 1; i >= 0; i-- {
		x.stride[i] = s
		s *= len(x.values[i])
	}
	x.kept = make([]int, 0, total)
	for c := range total {
		if excluded != nil {
			n := 0
			for i, l := range x.values {
				n += class[i][c/x.stride[i]%len(l)] * x.stride[i]
			}
			if excluded[n] {
				continue
			}
		}
		x.kept = append(x.kept, c)
	}
	return x, nil
}

// matrixExclusions reads a matrix's exclude list. An entry excludes the
// combinations whose values print as the entry's do, for every parameter:
// values are compared by their printed form, as CircleCI compares them.
// Rather than compare each entry with each combination, it prints each
// value once: class[i][j] is the first position in parameter i's list of a
// value that prints as value j does, and a combination's class is its
// number (as matrix numbers them) once each value is replaced by its
// class. The result is the set of excluded classes, nil when there are
// none.
func matrixExclusions(ex *node, order []string, lists [][]*node) (map[int]bool, [][]int, error) {
	if ex == nil {
		return nil, nil, nil
	}
	if ex.kind != seqNode {
		return nil, nil, errorf(ex, "exclude must be a list of parameter maps")
	}
	var first []map[string]int // printed value → first position, per parameter
	var class [][]int
	var excluded map[int]bool
	for _, e := range ex.items {
		if e.kind != mapNode {
			return nil, nil, errorf(e, "exclude entries are maps of matrix parameters")
		}
		for j, k := range e.keys {
			if !slices.Contains(order, k.value) {
				return nil, nil, errorf(k, "exclude names %q, which is not a matrix parameter", k.value)
			}
			if slices.ContainsFunc(e.keys[:j], func(x *node) bool { return x.value == k.value }) {
				// Only interpolated keys can repeat.
				return nil, nil, errorf(k, "exclude names %q twice", k.value)
			}
		}
		if len(e.keys) != len(order) {
			// An entry that leaves a parameter out excludes nothing.
			continue
		}
		if class == nil {
			first = make([]map[string]int, len(lists))
			class = make([][]int, len(lists))
			for i, l := range lists {
				first[i] = make(map[string]int, len(l))
				class[i] = make([]int, len(l))
				for j, v := range l {
					p := fmt.Sprint(v.toAny())
					if _, ok := first[i][p]; !ok {
						first[i][p] = j
					}
					class[i][j] = first[i][p]
				}
			}
			excluded = map[int]bool{}
		}
		n, stride := 0, 1
		for i := len(order) - 1; i >= 0; i-- {
			j, ok := first[i][fmt.Sprint(e.get(order[i]).toAny())]
			if !ok {
				n = -1 // no combination has this value
				break
			}
			n += j * stride
			stride *= len(lists[i])
		}
		if n >= 0 {
			excluded[n] = true
		}
	}
	return excluded, class, nil
}

// serialGroupName is what a serial group's name may hold, as CircleCI's
// troubleshooting guide for serial groups says.
var serialGroupName = lazyre.New(`^[A-Za-z0-9._/-]+$`)

// instance reads one (already interpolated) workflow job entry and finds
// the job it invokes, which compile compiles.
func (cc *compiler) instance(name string, nameNode, a *node) (*instance, error) {
	if a.isNull() {
		a = &node{kind: mapNode}
	}
	inst := &instance{at: nameNode}
	pj := &PlannedJob{Name: name, Job: name, Type: JobBuild, Requires: map[string][]string{}, Context: []string{}}
	inst.job = pj
	if n := a.get("name"); n != nil {
		pj.Name = n.str()
		if pj.Name == "" {
			return nil, errorf(n, "job %q: empty name", name)
		}
	}
	if g := a.get("serial-group"); g != nil {
		if g.kind != scalarNode || !serialGroupName.MatchString(g.str()) {
			return nil, errorf(g, "job %q: serial-group %q: a group's name is letters, digits and . - _ /", name, g.str())
		}
		pj.SerialGroup = g.str()
	}
	if ctx := a.get("context"); ctx != nil {
		list, err := stringList(ctx)
		if err != nil {
			return nil, err
		}
		pj.Context = list
	}
	if r := a.get("requires"); r != nil {
		reqs, err := requirements(r)
		if err != nil {
			return nil, err
		}
		inst.requires = reqs
	}
	if f := a.get("filters"); f != nil {
		fl, err := parseFilters(f, cc.pipeline)
		if err != nil {
			return nil, err
		}
		inst.filters = fl
	}
	switch t := a.get("type").str(); t {
	case JobApproval, JobNoOp:
		// Approval and no-op entries need no job definition: the name is
		// all there is, as in CircleCI.
		pj.Type = t
		for _, k := range a.keys {
			if !entryKeys[k.value] {
				return nil, errorf(k, "%s job %q takes no parameter %q", t, name, k.value)
			}
		}
		return inst, nil
	case "", JobBuild:
	default:
		return nil, errorf(a.get("type"), "job %q: unknown type %q (want approval, no-op or build)", name, t)
	}
	el, ok := cc.lookup(cc.cfg.root, "jobs", name)
	if !ok {
		if orb, _, isOrb := strings.Cut(name, "/"); isOrb && cc.cfg.root.orbs[orb] == nil {
			return nil, errorf(nameNode, "job %q: no orb named %q is declared in orbs", name, orb)
		}
		return nil, errorf(nameNode, "workflow invokes unknown job %q%s", name, cc.emptyOrb(cc.cfg.root, name))
	}
	inst.el, inst.args = el, a
	return inst, nil
}

// compile compiles the job an instance invokes, with the entry's
// arguments.
func (cc *compiler) compile(in *instance) error {
	if in.args == nil {
		return nil // an approval or no-op entry
	}
	a := in.args
	in.args = nil // compiled once; its nodes may go
	args, argKeys, err := invocationArgs(cc.budget, a, entryKeys)
	if err != nil {
		return err
	}
	typ, spec, err := cc.job(in.el.scope, in.el, in.at, args, argKeys, a.get("pre-steps"), a.get("post-steps"))
	if err != nil {
		return err
	}
	in.job.Type, in.job.Spec = typ, spec
	if spec != nil {
		spec.SerialGroup = in.job.SerialGroup
	}
	return nil
}

// requirements reads `requires`: names, or maps from a name to the
// statuses that satisfy it.
func requirements(r *node) ([]*requirement, error) {
	if r.kind == scalarNode {
		r = &node{kind: seqNode, items: []*node{r}, file: r.file, line: r.line, col: r.col}
	}
	var items []*requirement
	addMap := func(m *node) error {
		for i, k := range m.keys {
			st, err := stringList(m.vals[i])
			if err != nil {
				return err
			}
			if len(st) == 0 {
				return errorf(m.vals[i], "requires %q: name at least one status", k.value)
			}
			for _, s := range st {
				if !slices.Contains(requireStatuses, s) {
					return errorf(m.vals[i], "requires %q: unknown status %q (want %s)", k.value, s, strings.Join(requireStatuses, ", "))
				}
			}
			items = append(items, &requirement{name: k.value, statuses: st, at: k})
		}
		return nil
	}
	switch r.kind {
	case seqNode:
		for _, it := range r.items {
			switch it.kind {
			case scalarNode:
				items = append(items, &requirement{name: it.str(), statuses: []string{StatusSuccess}, at: it})
			case mapNode:
				if err := addMap(it); err != nil {
					return nil, err
				}
			default:
				return nil, errorf(it, "requires entries are names or maps")
			}
		}
	case mapNode:
		if err := addMap(r); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// nameInstances numbers repeated names, as CircleCI does: two unnamed
// invocations of `test` become test-1 and test-2.
func nameInstances(insts []*instance) {
	count := map[string]int{}
	for _, in := range insts {
		count[in.job.Name]++
	}
	seen := map[string]int{}
	for _, in := range insts {
		n := in.job.Name
		if count[n] > 1 {
			seen[n]++
			in.job.Name = n + "-" + strconv.Itoa(seen[n])
		}
	}
}

// link resolves requires to instance names (matrix aliases to all their
// instances) and rejects unknown names and cycles. Each edge is charged to
// b before it is made: requiring a matrix makes one per instance.
func link(wf *workflowDef, insts []*instance, b *budget) error {
	byName := make(map[string]*instance, len(insts))
	aliases := map[string][]*instance{}
	for i, in := range insts {
		in.index = i
		if prev, dup := byName[in.job.Name]; dup {
			return errorf(in.at, "workflow %q has two jobs named %q (the other at line %d)", wf.name, in.job.Name, prev.at.line)
		}
		byName[in.job.Name] = in
		if in.alias != "" {
			aliases[in.alias] = append(aliases[in.alias], in)
		}
	}
	targets := func(r *requirement) []*instance {
		if t, ok := byName[r.name]; ok {
			return []*instance{t}
		}
		return aliases[r.name]
	}
	for _, in := range insts {
		if len(in.requires) == 0 {
			continue
		}
		// Charge the instance's edges and make its map once.
		n := 0
		for _, r := range in.requires {
			ts := targets(r)
			if len(ts) == 0 {
				return errorf(r.at, "job %q requires %q, which is not a job of workflow %q", in.job.Name, r.name, wf.name)
			}
			if err := b.addRequires(len(ts), r.at); err != nil {
				return err
			}
			if slices.Contains(ts, in) {
				return errorf(r.at, "job %q requires itself", in.job.Name)
			}
			n += len(ts)
		}
		in.job.Requires = make(map[string][]string, n)
		for _, r := range in.requires {
			for _, t := range targets(r) {
				in.job.Requires[t.job.Name] = r.statuses
			}
		}
	}
	// Depth-first search for a cycle, reported at the requires entry that
	// closes it.
	state := make(map[*instance]int, len(insts))
	var visit func(in *instance, path []string) error
	visit = func(in *instance, path []string) error {
		state[in] = 1
		path = append(path, in.job.Name)
		names := make([]string, 0, len(in.job.Requires))
		for name := range in.job.Requires {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			t := byName[name]
			switch state[t] {
			case 1:
				return errorf(requiresEntry(in, t, byName), "workflow %q has a cycle: %s -> %s", wf.name, strings.Join(path, " -> "), name)
			case 0:
				if err := visit(t, path); err != nil {
					return err
				}
			}
		}
		state[in] = 2
		return nil
	}
	for _, in := range insts {
		if state[in] == 0 {
			if err := visit(in, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// requiresEntry finds the requires entry of in that made its edge to t:
// the last that names t, or t's matrix alias when no job has that name.
func requiresEntry(in, t *instance, byName map[string]*instance) *node {
	var at *node
	for _, r := range in.requires {
		if byName[r.name] == t || byName[r.name] == nil && t.alias != "" && r.name == t.alias {
			at = r.at
		}
	}
	return at
}

// filterInstances keeps the jobs whose filters match the trigger. A job
// whose requirements were all filtered out is dropped too; requirements on
// dropped jobs are forgotten (CircleCI's rules).
func filterInstances(insts []*instance, t Trigger) []*instance {
	// Taken in dependency order, a job's requirements are decided before
	// it is: one pass decides them all.
	kept := make(map[string]bool, len(insts))
	for _, in := range sortInstances(insts) {
		k := in.filters.match(t)
		if k && len(in.job.Requires) > 0 {
			k = false
			for r := range in.job.Requires {
				if kept[r] {
					k = true
					break
				}
			}
		}
		kept[in.job.Name] = k
	}
	var out []*instance
	for _, in := range insts {
		if !kept[in.job.Name] {
			continue
		}
		for r := range in.job.Requires {
			if !kept[r] {
				delete(in.job.Requires, r)
			}
		}
		out = append(out, in)
	}
	return out
}

// order lists the jobs of insts so that each comes after what it
// requires, otherwise in file order.
func order(insts []*instance) []*PlannedJob {
	sorted := sortInstances(insts)
	out := make([]*PlannedJob, len(sorted))
	for i, in := range sorted {
		out[i] = in.job
	}
	return out
}

// sortInstances sorts instances so that each comes after what it
// requires, otherwise in file order (Kahn's algorithm with the ready jobs
// in a heap).
func sortInstances(insts []*instance) []*instance {
	indeg := make(map[string]int, len(insts))
	down := map[string][]*instance{}
	for _, in := range insts {
		indeg[in.job.Name] = len(in.job.Requires)
		for r := range in.job.Requires {
			down[r] = append(down[r], in)
		}
	}
	ready := &readyHeap{}
	for _, in := range insts {
		if indeg[in.job.Name] == 0 {
			ready.items = append(ready.items, in)
		}
	}
	heap.Init(ready)
	out := make([]*instance, 0, len(insts))
	for ready.Len() > 0 {
		in := heap.Pop(ready).(*instance)
		out = append(out, in)
		for _, d := range down[in.job.Name] {
			indeg[d.job.Name]--
			if indeg[d.job.Name] == 0 {
				heap.Push(ready, d)
			}
		}
	}
	return out
}

// readyHeap orders ready jobs by their place in the file.
type readyHeap struct{ items []*instance }

func (h *readyHeap) Len() int           { return len(h.items) }
func (h *readyHeap) Less(i, j int) bool { return h.items[i].index < h.items[j].index }
func (h *readyHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *readyHeap) Push(x any)         { h.items = append(h.items, x.(*instance)) }
func (h *readyHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}

// filters are a workflow job's branch and tag filters, or the outcome
// of its expression filter.
type filters struct {
	branches, tags *patterns
	// expression is set for an expression filter, which decides alone
	// whatever was pushed; result is what it gave for the trigger.
	expression, result bool
}

type patterns struct {
	only, ignore []pattern
}

// pattern is an exact name, or a /regex/ matched against the whole name.
type pattern struct {
	exact string
	re    *regexp.Regexp
}

func (p pattern) match(s string) bool {
	if p.re != nil {
		return p.re.MatchString(s)
	}
	return p.exact == s
}

// parseFilters reads a job's filters: a map of branches, tags and
// pull_requests patterns, or an expression, evaluated here with the
// trigger's pipeline values. Pull request filters say which pull
// requests run a job: a push is not a pull request, so they are read,
// checked and left out.
func parseFilters(f *node, pipeline map[string]*node) (*filters, error) {
	if f.kind == scalarNode && !f.isNull() {
		ok, err := evalExpression(f, "filters", pipelineEnv(pipeline))
		if err != nil {
			return nil, err
		}
		return &filters{expression: true, result: ok}, nil
	}
	if f.kind != mapNode {
		return nil, errorf(f, "filters must be a map with branches or tags, or an expression")
	}
	if err := checkKeys(f, "filters", "filters"); err != nil {
		return nil, err
	}
	out := &filters{}
	for i, k := range f.keys {
		p, err := parsePatterns(f.vals[i])
		if err != nil {
			return nil, err
		}
		switch k.value {
		case "branches":
			out.branches = p
		case "tags":
			out.tags = p
		}
	}
	return out, nil
}

func parsePatterns(n *node) (*patterns, error) {
	if n.kind != mapNode {
		return nil, errorf(n, "a filter is a map with only or ignore")
	}
	if err := checkKeys(n, "branch filter", "filter"); err != nil {
		return nil, err
	}
	p := &patterns{}
	for i, k := range n.keys {
		list, err := stringList(n.vals[i])
		if err != nil {
			return nil, err
		}
		var ps []pattern
		for _, s := range list {
			if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
				re, err := fullMatch(s[1 : len(s)-1])
				if err != nil {
					return nil, errorf(n.vals[i], "bad filter regex %s: %v", s, err)
				}
				ps = append(ps, pattern{re: re})
				continue
			}
			ps = append(ps, pattern{exact: s})
		}
		switch k.value {
		case "only":
			p.only = ps
		case "ignore":
			p.ignore = ps
		default:
			return nil, errorf(k, "filter: unknown key %q (want only or ignore)", k.value)
		}
	}
	return p, nil
}

// match applies a pattern set: only (when given) must match, ignore must
// not.
func (p *patterns) match(s string) bool {
	if p.only != nil && !slices.ContainsFunc(p.only, func(x pattern) bool { return x.match(s) }) {
		return false
	}
	return !slices.ContainsFunc(p.ignore, func(x pattern) bool { return x.match(s) })
}

// match decides whether a job runs for a trigger. Branch filters apply to
// branch pushes; a tag push runs only jobs with a tags filter that admits
// the tag, as in CircleCI.
func (f *filters) match(t Trigger) bool {
	// A pipeline started from chat (/deploy, /rollback) runs the workflow
	// a person asked for at the commit they named: filters say which
	// pushes run a job, and do not apply to it.
	if t.Deploy != nil {
		return true
	}
	if f != nil && f.expression {
		return f.result
	}
	if t.Tag != "" {
		return f != nil && f.tags != nil && f.tags.match(t.Tag)
	}
	if f == nil || f.branches == nil {
		return true
	}
	return f.branches.match(t.Branch)
}
