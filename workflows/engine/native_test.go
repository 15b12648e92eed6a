package engine_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// awsRunner records the slipway/aws steps it is given, and fails those
// whose repo is "broken". It reads the job's file "built" and reports
// it, with the tag it was given, as its outputs.
type awsRunner struct {
	mu    sync.Mutex
	steps []string
}

func (r *awsRunner) RunNative(ctx context.Context, run *engine.NativeRun) (engine.Outputs, error) {
	s := run.Step
	r.mu.Lock()
	r.steps = append(r.steps, run.Job.JobName+" "+s.Command+" "+s.Params["repo"])
	r.mu.Unlock()
	if s.Params["repo"] == "broken" {
		return nil, errors.New("repository broken does not exist")
	}
	rc, err := run.Files.Tar(ctx, "built")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(tr)
	io.WriteString(run.Log, "pushed\n")
	return engine.Outputs{"ecr.tag": s.Params["tag"], "ecr.file": hdr.Name + "=" + strings.TrimSpace(string(body))}, nil
}

func nativeJob(name string, steps ...workflows.Step) *workflows.PlannedJob {
	j := build(name)
	j.Spec = &workflows.JobSpec{Executor: workflows.ExecutorMachine, Shell: "/bin/sh -e", Steps: steps}
	return j
}

func native(orb, command string, when string, params map[string]string) workflows.Step {
	return workflows.Step{Native: &workflows.NativeStep{Orb: orb, Command: command, When: when, Params: params}}
}

func TestNativeStepsRunInTheirPlaceAmongTheJobsSteps(t *testing.T) {
	aws := &awsRunner{}
	h := newHarness(t, func(o *engine.Options) {
		exe, err := local.New(local.Options{Dir: filepath.Join(t.TempDir(), "attempts"), AllowRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		o.Executor = exe
		o.Natives = map[string]engine.NativeRunner{engine.OrbAWS: aws}
	})
	p := h.submit("alice", wf("deploy",
		nativeJob("push",
			workflows.Step{Run: &workflows.RunStep{Command: "echo building; echo image-of-$CIRCLE_SHA1 > built"}},
			native(engine.OrbAWS, "ecr-push", workflows.WhenOnSuccess, map[string]string{"repo": "backend", "tag": "${CIRCLE_SHA1}-x $${literal} ${}"}),
			native(engine.OrbSlack, "notify", workflows.WhenOnSuccess, map[string]string{"message": "pushed backend"}),
			native(engine.OrbSlack, "notify", workflows.WhenOnFail, nil),
		),
		nativeJob("broken",
			native(engine.OrbAWS, "ecr-push", workflows.WhenOnSuccess, map[string]string{"repo": "broken"}),
			native(engine.OrbSlack, "notify", workflows.WhenOnFail, nil),
		),
	))
	st := h.settle(p.ID)
	if diff := cmp.Diff(map[string]string{"": "failed", "push": "success", "broken": "failed"}, statuses(st)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, describe(st))
	}
	if j := jobStatus(st, "broken"); !strings.Contains(j.Reason, "slipway/aws ecr-push: repository broken does not exist") {
		t.Errorf("broken's reason = %q", j.Reason)
	}
	if diff := cmp.Diff([]string{"broken ecr-push broken", "push ecr-push backend"}, slices.Sorted(slices.Values(aws.steps))); diff != "" {
		t.Errorf("aws steps (-want +got):\n%s", diff)
	}
	// The step's parameters were expanded against the job's environment,
	// it read the file the job wrote, and what it reported is kept with
	// the attempt.
	attempts, err := h.db.Attempts(context.Background(), jobStatus(st, "push").ID)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Outputs{"ecr.tag": "0123456789abcdef-x ${literal} ${}", "ecr.file": "built=image-of-0123456789abcdef"}
	if diff := cmp.Diff(want, attempts[0].Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if _, err := h.engine.DeliverEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	var messages []string
	h.notifier.mu.Lock()
	for _, ev := range h.notifier.events {
		if ev.Kind == engine.EventChatMessage {
			messages = append(messages, ev.Data.Job+": "+ev.Data.Message)
		}
	}
	h.notifier.mu.Unlock()
	if diff := cmp.Diff([]string{"broken: Job broken failed", "push: pushed backend"}, slices.Sorted(slices.Values(messages))); diff != "" {
		t.Errorf("chat messages (-want +got):\n%s", diff)
	}
}

func TestNativeStepWithoutARunnerFailsClearly(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) {
		exe, err := local.New(local.Options{Dir: filepath.Join(t.TempDir(), "attempts"), AllowRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		o.Executor = exe
	})
	p := h.submit("alice", wf("deploy",
		nativeJob("push", native(engine.OrbAWS, "ecr-push", workflows.WhenOnSuccess, map[string]string{"repo": "backend"}))))
	st := h.settle(p.ID)
	j := jobStatus(st, "push")
	if j.Status != workflows.StatusFailed || !strings.Contains(j.Reason, "this server carries out no slipway/aws steps") {
		t.Errorf("push = %s (%s)", j.Status, j.Reason)
	}
}
