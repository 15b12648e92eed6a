package forge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// fakeStarter records the pipelines it is asked to start.
type fakeStarter struct {
	start  func(req engine.StartRequest) (engine.Started, error)
	reqs   []engine.StartRequest
	cancel []string // pipelines whose superseded ones were canceled
}

func (f *fakeStarter) StartPipeline(ctx context.Context, req engine.StartRequest) (engine.Started, error) {
	f.reqs = append(f.reqs, req)
	if f.start != nil {
		return f.start(req)
	}
	return engine.Started{Pipeline: &engine.PipelineRecord{ID: req.ID, Number: len(f.reqs), Trigger: req.Trigger}}, nil
}

func (f *fakeStarter) CancelSuperseded(ctx context.Context, p *engine.PipelineRecord) ([]int, error) {
	f.cancel = append(f.cancel, p.ID)
	return []int{7}, nil
}

// fakeConfigs hands out loaders that say where they load from.
type fakeConfigs struct{}

type namedLoader string

func (n namedLoader) LoadConfig(context.Context) (*workflows.Config, error) {
	return nil, errors.New(string(n))
}

func (fakeConfigs) Config(repo, sha, path string, opts workflows.LoadOptions) engine.ConfigLoader {
	return namedLoader(repo + "@" + sha + ":" + path)
}

func receive(t *testing.T, in *Intake, db interface {
	Receive(context.Context, engine.InboxItem) (bool, error)
}, id, event string, payload []byte) {
	t.Helper()
	if _, err := db.Receive(context.Background(), engine.InboxItem{Source: "github", ID: id, Kind: event, Payload: payload, Received: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

var helloWorld = App{Name: "hello", Repo: "Codertocat/Hello-World"}

// Every push of the real payloads is handled as GitHub means it: a new
// branch's head starts a pipeline; a deleted tag, another repository,
// and events that are not pushes start nothing.
func TestIntakeHandlesGitHubsPayloads(t *testing.T) {
	tests := []struct {
		file, event string
		start       bool
		result      string
	}{
		{"push.with-new-branch.json", "push", true, "pipeline 1"},
		{"push.with-no-username-committer.json", "push", true, "pipeline 1"},
		{"push.payload.json", "push", false, `ignored: "refs/tags/simple-tag" was deleted`},
		{"push.1.json", "push", false, "was deleted"},
		{"push.with-installation.json", "push", false, "was deleted"},
		{"push.with-organization.json", "push", false, "was deleted"},
		{"create.payload.json", "create", false, "ignored: not a push"},
		{"delete.payload.json", "delete", false, "ignored: not a push"},
		{"pull_request.opened.json", "pull_request", false, "ignored: not a push"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			db := openStore(t)
			st := &fakeStarter{}
			in := NewIntake(db, st, fakeConfigs{}, []App{helloWorld}, IntakeOptions{})
			receive(t, in, db, "d-1", tt.event, corpus(t, tt.file))
			if n, err := in.HandlePending(context.Background()); err != nil || n != 1 {
				t.Fatalf("handled %d: %v", n, err)
			}
			if (len(st.reqs) > 0) != tt.start {
				t.Fatalf("started %d pipelines", len(st.reqs))
			}
			_, result, _ := db.InboxResult(context.Background(), "github", "d-1")
			if !strings.Contains(result, tt.result) {
				t.Errorf("result %q, want %q", result, tt.result)
			}
		})
	}
}

// A push starts the pipeline the plan needs: the pushed commit of the
// app's repository, its branch, the pusher as author, the config at that
// commit, and an ID derived from the delivery's.
func TestIntakeStartsThePushedCommit(t *testing.T) {
	db := openStore(t)
	st := &fakeStarter{}
	app := helloWorld
	app.ConfigPath = "ci/config.yml"
	in := NewIntake(db, st, fakeConfigs{}, []App{app}, IntakeOptions{})
	receive(t, in, db, "72d3162e-cc78-11e3", "push", corpus(t, "push.with-new-branch.json"))
	if _, err := in.HandlePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(st.reqs) != 1 {
		t.Fatalf("%d starts", len(st.reqs))
	}
	req := st.reqs[0]
	sha := "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	want := engine.StartRequest{
		ID: "gh-72d3162e-cc78-11e3", App: "hello", Repo: "Codertocat/Hello-World", Author: "Codertocat", Authors: []string{"Codertocat"},
		Trigger: workflows.Trigger{Branch: "master", Revision: sha, Source: "webhook", ProjectURL: "https://github.com/Codertocat/Hello-World"},
		Source:  engine.Source{Repo: "Codertocat/Hello-World", Revision: sha},
		Config:  namedLoader("Codertocat/Hello-World@" + sha + ":ci/config.yml"),
		Commit: engine.CommitInfo{Title: "Initial commit", Author: "Codertocat",
			URL: "https://github.com/Codertocat/Hello-World/commit/" + sha},
	}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("start request (-want +got):\n%s", diff)
	}
}

// Handling that fails (GitHub unreachable while loading the config) is
// tried again later with the same pipeline ID, never dropped; a start
// that had happened before the failure is found, not repeated.
func TestIntakeRetriesWhatFailed(t *testing.T) {
	db := openStore(t)
	now := time.Now().UTC().Add(time.Minute) // after the delivery's receipt
	fails := 2
	st := &fakeStarter{start: func(req engine.StartRequest) (engine.Started, error) {
		if fails > 0 {
			fails--
			return engine.Started{}, errors.New("engine: start: config: GET contents: 502 Bad Gateway")
		}
		return engine.Started{Pipeline: &engine.PipelineRecord{ID: req.ID, Number: 3}, Existing: true}, nil
	}}
	in := NewIntake(db, st, fakeConfigs{}, []App{helloWorld}, IntakeOptions{Now: func() time.Time { return now }, RetryMin: time.Second})
	receive(t, in, db, "d-1", "push", corpus(t, "push.with-new-branch.json"))
	for i, wait := range []time.Duration{0, time.Second, 2 * time.Second} {
		now = now.Add(wait)
		if _, err := in.HandlePending(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(st.reqs); got != i+1 {
			t.Fatalf("after pass %d: %d starts", i+1, got)
		}
	}
	if handled, result, _ := db.InboxResult(context.Background(), "github", "d-1"); !handled || result != "pipeline 3 (started before)" {
		t.Errorf("handled %v %q", handled, result)
	}
	for _, r := range st.reqs {
		if r.ID != "gh-d-1" {
			t.Errorf("a retry started %q", r.ID)
		}
	}
}

func TestIntakeConfigErrorsAndSuperseded(t *testing.T) {
	db := openStore(t)
	st := &fakeStarter{start: func(req engine.StartRequest) (engine.Started, error) {
		return engine.Started{Pipeline: &engine.PipelineRecord{ID: req.ID, Number: 4, Trigger: req.Trigger},
			ConfigErr: &engine.ConfigError{Err: &workflows.Error{File: ".circleci/config.yml", Line: 3, Col: 5, Msg: "unknown key \"jbos\""}}}, nil
	}}
	app := helloWorld
	app.CancelSuperseded = true
	in := NewIntake(db, st, fakeConfigs{}, []App{app}, IntakeOptions{})
	receive(t, in, db, "d-1", "push", corpus(t, "push.with-new-branch.json"))
	if _, err := in.HandlePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, result, _ := db.InboxResult(context.Background(), "github", "d-1")
	if want := `pipeline 4: config error: .circleci/config.yml:3:5: unknown key "jbos"`; result != want {
		t.Errorf("result %q, want %q", result, want)
	}
	if len(st.cancel) != 0 {
		t.Error("a pipeline that runs nothing superseded others")
	}
	st.start = nil
	receive(t, in, db, "d-2", "push", corpus(t, "push.with-new-branch.json"))
	if _, err := in.HandlePending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, result, _ := db.InboxResult(context.Background(), "github", "d-2"); !strings.Contains(result, "canceled superseded pipelines [7]") {
		t.Errorf("result %q", result)
	}
}

// people matches GitHub people to chat users by login or email.
type people map[string]string

func (p people) Identify(ctx context.Context, login, email string) (string, error) {
	if id, ok := p[login]; ok {
		return id, nil
	}
	if email == "down@example.com" {
		return "", errors.New("slack: 503")
	}
	return p[email], nil
}

// A push's authors (the pusher and the head commit's author) are named
// as chat users where they can be matched, else as unknown: the engine
// refuses each of them self-approval.
func TestIntakeNamesAuthorsAsChatUsers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		people people
		want   []string
	}{
		{"matched by login", people{"Codertocat": "U0CAT"}, []string{"U0CAT"}},
		{"matched by email", people{"21031067+Codertocat@users.noreply.github.com": "U0CAT"}, []string{"U0CAT"}},
		{"not matched", people{}, []string{engine.UnknownAuthor("Codertocat")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openStore(t)
			st := &fakeStarter{}
			in := NewIntake(db, st, fakeConfigs{}, []App{helloWorld}, IntakeOptions{People: tt.people})
			receive(t, in, db, "d-1", "push", corpus(t, "push.with-new-branch.json"))
			if _, err := in.HandlePending(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := st.reqs[0].Authors; !cmp.Equal(got, tt.want) || st.reqs[0].Author != tt.want[0] {
				t.Errorf("authors %v (author %s), want %v", got, st.reqs[0].Author, tt.want)
			}
		})
	}
}
