package web

import (
	"bytes"
	"cmp"
	"fmt"
	"html"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/a-h/templ"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// A workflow's graph is laid out in layers, left to right, as the
// Sugiyama method does it, kept simple enough to stay fast at 500 jobs:
//
//  1. each job's layer is the longest path to it from a job that
//     requires nothing, so that every arrow points right;
//  2. an arrow that spans several layers goes through a dummy point in
//     each layer it crosses, so that it can be routed around boxes;
//  3. the jobs of each layer are ordered by the barycentre of their
//     neighbours, sweeping right then left, keeping the order with the
//     fewest crossings (counted exactly, in E log V);
//  4. each layer's rows are pulled toward their neighbours' rows, then
//     kept apart, so that chains run straight.

// gnode is a job, or a dummy point of a long arrow, in the layout.
type gnode struct {
	job   int // index in the workflow's jobs; -1 for a dummy
	layer int
	pos   int     // order in its layer
	y     float64 // centre, in rows
	in    []int   // nodes of the previous layer it is joined to
	out   []int   // nodes of the next layer
}

// gedge is an arrow from a required job to the job that requires it,
// through the dummies between them.
type gedge struct {
	from, to int   // job indexes
	path     []int // node indexes, from first to last
}

// layout is a workflow's graph placed in layers and rows.
type layout struct {
	nodes  []gnode
	layers [][]int // node indexes by layer, in order
	edges  []gedge
	rows   float64 // height, in rows
}

// layoutJobs lays out jobs (one workflow's), joined by their requires.
func layoutJobs(jobs []engine.JobRecord) *layout {
	n := len(jobs)
	byName := make(map[string]int, n)
	for i, j := range jobs {
		byName[j.Name] = i
	}
	req := make([][]int, n) // required jobs of each job
	for i, j := range jobs {
		for name := range j.Requires {
			if k, ok := byName[name]; ok && k != i {
				req[i] = append(req[i], k)
			}
		}
		slices.Sort(req[i])
	}
	// 1. Longest-path layers, in topological order (Kahn); a cycle,
	// which a plan never has, is broken by placing what is left at the end.
	layer := make([]int, n)
	indeg := make([]int, n)
	next := make([][]int, n)
	for i := range req {
		indeg[i] = len(req[i])
		for _, k := range req[i] {
			next[k] = append(next[k], i)
		}
	}
	queue := make([]int, 0, n)
	for i := range n {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	done := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		done++
		for _, k := range next[i] {
			layer[k] = max(layer[k], layer[i]+1)
			if indeg[k]--; indeg[k] == 0 {
				queue = append(queue, k)
			}
		}
	}
	if done < n {
		top := slices.Max(layer)
		for i := range n {
			if indeg[i] > 0 {
				layer[i] = top + 1
			}
		}
	}
	l := &layout{}
	nl := 0
	if n > 0 {
		nl = slices.Max(layer) + 1
	}
	l.layers = make([][]int, nl)
	l.nodes = make([]gnode, n, n*2)
	for i := range n {
		l.nodes[i] = gnode{job: i, layer: layer[i]}
		l.layers[layer[i]] = append(l.layers[layer[i]], i) // plan order first
	}
	// 2. Arrows, with a dummy in each layer they cross.
	for i := range n {
		for _, k := range req[i] {
			if layer[k] >= layer[i] {
				continue // only within a broken cycle
			}
			e := gedge{from: k, to: i, path: []int{k}}
			prev := k
			for ly := layer[k] + 1; ly < layer[i]; ly++ {
				d := len(l.nodes)
				l.nodes = append(l.nodes, gnode{job: -1, layer: ly})
				l.layers[ly] = append(l.layers[ly], d)
				l.link(prev, d)
				e.path = append(e.path, d)
				prev = d
			}
			l.link(prev, i)
			e.path = append(e.path, i)
			l.edges = append(l.edges, e)
		}
	}
	l.order()
	l.place()
	return l
}

func (l *layout) link(a, b int) {
	l.nodes[a].out = append(l.nodes[a].out, b)
	l.nodes[b].in = append(l.nodes[b].in, a)
}

// order is step 3.
func (l *layout) order() {
	l.renumber()
	best := l.snapshot()
	bestX := l.crossings()
	for iter := 0; iter < 8 && bestX > 0; iter++ {
		if iter%2 == 0 {
			for ly := 1; ly < len(l.layers); ly++ {
				l.sortLayer(ly, true)
			}
		} else {
			for ly := len(l.layers) - 2; ly >= 0; ly-- {
				l.sortLayer(ly, false)
			}
		}
		if x := l.crossings(); x < bestX {
			bestX, best = x, l.snapshot()
		}
	}
	for ly := range l.layers {
		l.layers[ly] = best[ly]
	}
	l.renumber()
}

func (l *layout) renumber() {
	for _, layer := range l.layers {
		for p, v := range layer {
			l.nodes[v].pos = p
		}
	}
}

func (l *layout) snapshot() [][]int {
	s := make([][]int, len(l.layers))
	for i, layer := range l.layers {
		s[i] = slices.Clone(layer)
	}
	return s
}

// sortLayer orders a layer by the mean position of its neighbours in the
// layer before it (byIn) or after it; a node without any keeps its place.
func (l *layout) sortLayer(ly int, byIn bool) {
	layer := l.layers[ly]
	key := make(map[int]float64, len(layer))
	for _, v := range layer {
		nb := l.nodes[v].out
		if byIn {
			nb = l.nodes[v].in
		}
		if len(nb) == 0 {
			key[v] = float64(l.nodes[v].pos)
			continue
		}
		sum := 0
		for _, u := range nb {
			sum += l.nodes[u].pos
		}
		key[v] = float64(sum) / float64(len(nb))
	}
	slices.SortStableFunc(layer, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
	for p, v := range layer {
		l.nodes[v].pos = p
	}
}

// crossings counts the arrows that cross between adjacent layers: for
// the links sorted by their left end, the pairs whose right ends are in
// the other order, counted with a Fenwick tree.
func (l *layout) crossings() int {
	total := 0
	var links [][2]int
	var tree []int
	for ly := 0; ly+1 < len(l.layers); ly++ {
		links = links[:0]
		for _, v := range l.layers[ly] {
			for _, w := range l.nodes[v].out {
				links = append(links, [2]int{l.nodes[v].pos, l.nodes[w].pos})
			}
		}
		slices.SortFunc(links, func(a, b [2]int) int {
			if c := cmp.Compare(a[0], b[0]); c != 0 {
				return c
			}
			return cmp.Compare(a[1], b[1])
		})
		size := len(l.layers[ly+1]) + 1
		tree = slices.Grow(tree[:0], size)[:size]
		clear(tree)
		seen := 0
		for _, e := range links {
			// Links seen so far that end below this one's end cross it.
			le := 0
			for i := e[1] + 1; i > 0; i -= i & -i {
				le += tree[i]
			}
			total += seen - le
			for i := e[1] + 1; i < size; i += i & -i {
				tree[i]++
			}
			seen++
		}
	}
	return total
}

// place is step 4: rows in each layer, in order, one apart at least.
func (l *layout) place() {
	for _, layer := range l.layers {
		for p, v := range layer {
			l.nodes[v].y = float64(p)
		}
	}
	for pass := 0; pass < 4; pass++ {
		if pass%2 == 0 {
			for ly := 1; ly < len(l.layers); ly++ {
				l.pull(ly, true)
			}
		} else {
			for ly := len(l.layers) - 2; ly >= 0; ly-- {
				l.pull(ly, false)
			}
		}
	}
	minY := 0.0
	for _, nd := range l.nodes {
		minY = min(minY, nd.y)
	}
	for i := range l.nodes {
		l.nodes[i].y -= minY
		l.rows = max(l.rows, l.nodes[i].y+1)
	}
}

// pull moves a layer's nodes toward the mean row of their neighbours,
// then apart to one row at least, in order, shifting the layer back by
// the mean of what keeping them apart moved it.
func (l *layout) pull(ly int, byIn bool) {
	layer := l.layers[ly]
	want := make([]float64, len(layer))
	for p, v := range layer {
		nb := l.nodes[v].out
		if byIn {
			nb = l.nodes[v].in
		}
		want[p] = l.nodes[v].y
		if len(nb) > 0 {
			s := 0.0
			for _, u := range nb {
				s += l.nodes[u].y
			}
			want[p] = s / float64(len(nb))
		}
	}
	got := slices.Clone(want)
	for p := 1; p < len(got); p++ {
		got[p] = max(got[p], got[p-1]+1)
	}
	shift := 0.0
	for p := range got {
		shift += got[p] - want[p]
	}
	shift /= float64(len(got))
	for p, v := range layer {
		l.nodes[v].y = got[p] - shift
	}
}

// Sizes of the drawing, in pixels.
const (
	boxW   = 164
	boxH   = 44
	gapX   = 44
	rowH   = 60
	margin = 12
)

// graphJob is what a box shows of a job.
type graphJob struct {
	Job  *engine.JobRecord
	Href string
	Sub  string // the line under the name: a duration, who approved
}

// minScale is how far a wide graph shrinks to fit the page before it
// scrolls instead: names stay readable.
const minScale = 0.7

// svg draws the layout of jobs as an SVG, every name escaped; id names
// its arrowhead, unique in the page.
func (l *layout) svg(id string, jobs []graphJob) templ.Component {
	cols := len(l.layers)
	w := margin*2 + cols*boxW + max(cols-1, 0)*gapX
	h := margin*2 + int(l.rows*rowH) - (rowH - boxH)
	var b bytes.Buffer
	b.Grow(256 + len(jobs)*420 + len(l.edges)*120)
	h = max(h, boxH)
	fmt.Fprintf(&b, `<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="100%%" viewBox="0 0 %d %d" style="max-width:%dpx;min-width:%dpx" role="img">`,
		w, h, w, int(float64(w)*minScale))
	fmt.Fprintf(&b, `<defs><marker id="arrow-%s" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>`, id)
	x := func(v int) float64 { return float64(margin + l.nodes[v].layer*(boxW+gapX)) }
	y := func(v int) float64 { return float64(margin) + l.nodes[v].y*rowH + boxH/2 }
	b.WriteString(`<g class="edges">`)
	for _, e := range l.edges {
		class := "edge"
		if st := jobs[e.from].Job.Status; st == workflows.StatusSuccess {
			class += " done"
		} else if engine.Terminal(st) {
			class += " dead"
		}
		fmt.Fprintf(&b, `<path class="%s" marker-end="url(#arrow-%s)" d="M%.0f,%.1f`, class, id, x(e.path[0])+boxW, y(e.path[0]))
		for i := 1; i < len(e.path); i++ {
			u, v := e.path[i-1], e.path[i]
			x0 := x(u)
			if i > 1 {
				x0 += boxW / 2 // from a dummy's centre
			} else {
				x0 += boxW
			}
			x1 := x(v)
			if i < len(e.path)-1 {
				x1 += boxW / 2
			} else {
				x1 -= 2
			}
			mx := (x0 + x1) / 2
			fmt.Fprintf(&b, ` C%.0f,%.1f %.0f,%.1f %.0f,%.1f`, mx, y(u), mx, y(v), x1, y(v))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</g><g class="nodes">`)
	for _, layer := range l.layers {
		for _, v := range layer {
			nd := l.nodes[v]
			if nd.job < 0 {
				continue
			}
			gj := jobs[nd.job]
			j := gj.Job
			x0, y0 := x(v), y(v)-boxH/2
			kind := "job"
			if j.Type == workflows.JobApproval {
				kind = "gate"
			}
			fmt.Fprintf(&b, `<a href="%s" class="node %s s-%s"><title>`, html.EscapeString(gj.Href), kind, statusClass(j.Status))
			b.WriteString(html.EscapeString(j.Name + " — " + statusWord(j.Status)))
			if gj.Sub != "" {
				b.WriteString(html.EscapeString(" — " + gj.Sub))
			}
			b.WriteString(`</title>`)
			if kind == "gate" {
				// A gate: a box with pointed ends, like a lock's shackle.
				fmt.Fprintf(&b, `<path class="box" d="M%.0f,%.0f h%d l10,%d l-10,%d h-%d l-10,-%d z"/>`,
					x0+10, y0, boxW-20, boxH/2, boxH/2, boxW-20, boxH/2)
				fmt.Fprintf(&b, `<path class="gate-mark" d="M%.0f,%.0f v-4 a5,5 0 0 1 10,0 v4 m-7,0 h10 v8 h-12 v-8 z"/>`, x0+18, y0+20)
			} else {
				fmt.Fprintf(&b, `<rect class="box" x="%.0f" y="%.0f" width="%d" height="%d" rx="7"/>`, x0, y0, boxW, boxH)
				fmt.Fprintf(&b, `<rect class="band" x="%.0f" y="%.0f" width="5" height="%d" rx="2"/>`, x0+1, y0+1, boxH-2)
			}
			tx := x0 + 14
			if kind == "gate" {
				tx = x0 + 36
			}
			fmt.Fprintf(&b, `<text class="name" x="%.0f" y="%.0f">`, tx, y0+18)
			room := float64(boxW) - (tx - x0) - 12 // pixels for text, at about 7.6 a character of a name
			if kind == "gate" {
				room -= 8
			}
			b.WriteString(html.EscapeString(clip(j.Name, int(room/7.6))))
			fmt.Fprintf(&b, `</text><text class="sub" x="%.0f" y="%.0f">`, tx, y0+34)
			sub := gj.Sub
			if sub == "" {
				sub = statusWord(j.Status)
			}
			b.WriteString(html.EscapeString(clip(sub, int(room/6.2))))
			b.WriteString(`</text></a>`)
		}
	}
	b.WriteString(`</g></svg>`)
	return templ.Raw(b.String())
}

// clip shortens s to n characters, with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// statusClass is a status as a CSS class suffix.
func statusClass(s string) string {
	switch s {
	case workflows.StatusSuccess, workflows.StatusFailed, workflows.StatusCanceled, workflows.StatusNotRun,
		workflows.StatusUnauthorized, workflows.StatusSkipped, engine.StatusBlocked, engine.StatusQueued,
		engine.StatusRunning, engine.StatusOnHold, engine.StatusError:
		return s
	}
	return "unknown"
}

// statusWord is a status for people.
func statusWord(s string) string {
	switch s {
	case engine.StatusOnHold:
		return "on hold"
	case workflows.StatusNotRun:
		return "not run"
	case "":
		return "unknown"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
