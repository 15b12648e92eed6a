package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
)

// seedRepo is a git repository holding the seed pipeline's config, as a
// team's repository would.
func seedRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	config, err := os.ReadFile("../../testdata/seed/.circleci/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".circleci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".circleci", "config.yml"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."},
		{"-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "seed"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func TestRunSeedPipelineInDocker(t *testing.T) {
	dockertest.RequireImage(t)
	repo := seedRepo(t)
	success := func(jobs ...string) []runJob {
		var out []runJob
		for _, j := range jobs {
			out = append(out, runJob{Name: j, Status: "success"})
		}
		return out
	}
	tests := []struct {
		branch string
		jobs   []runJob
	}{
		{"feature/login", success("build", "test")},
		{"main", success("build", "test", "migrate-staging", "deploy-staging", "smoke-test", "hold-production",
			"migrate-production", "push-image", "update-lambdas-api-handler", "update-lambdas-queue-worker",
			"deploy-beanstalk-backend-app", "deploy-beanstalk-backend-workers")},
	}
	for _, tt := range tests {
		t.Run(tt.branch, func(t *testing.T) {
			var out, errs bytes.Buffer
			code := Main(context.Background(), []string{"run", filepath.Join(repo, ".circleci", "config.yml"), "--repo", repo,
				"--branch", tt.branch, "--executor", "docker", "--remote-docker", "--approve", "--json", "--logs"},
				strings.NewReader(""), &out, &errs)
			if code != 0 {
				t.Errorf("exit %d; stderr:\n%s", code, errs.String())
			}
			var got runOutput
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("stdout is not the JSON outcome: %v\n%s", err, out.String())
			}
			want := runOutput{Workflows: []runWorkflow{{Name: "build-test-deploy", Status: "success", Jobs: tt.jobs}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s\nprogress:\n%s", diff, errs.String())
			}
			// The job ran in the test image, with the seed's environment,
			// and its log reached the terminal.
			for _, line := range []string{"tests passed", "Copying "} {
				if !strings.Contains(errs.String(), line) {
					t.Errorf("progress lacks %q:\n%s", line, errs.String())
				}
			}
			if tt.branch == "main" && !strings.Contains(errs.String(), `slipway/aws ecr-push (dry run: slipway run does not deploy): build-args="" create-repo="false" dockerfile="Dockerfile"`) {
				t.Errorf("progress lacks the ecr-push dry run:\n%s", errs.String())
			}
		})
	}
}

// Ctrl-C in the middle of docker jobs leaves no container or network of
// this process behind.
func TestRunInDockerInterrupted(t *testing.T) {
	cli := dockertest.RequireImage(t)
	repo := seedRepo(t)
	ctx, errs := interruptOn(t, "build-test-deploy/test: started")
	var out bytes.Buffer
	code := Main(ctx, []string{"run", filepath.Join(repo, ".circleci", "config.yml"), "--repo", repo,
		"--branch", "main", "--executor", "docker", "--approve", "--json"}, strings.NewReader(""), &out, errs)
	if code != 1 || !strings.Contains(out.String(), `"status":"canceled"`) {
		t.Errorf("exit %d, outcome %s; progress:\n%s", code, out.String(), errs.String())
	}
	mine := filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+docker.Owner()))
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: mine})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(context.Background(), network.ListOptions{Filters: mine})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs)+len(ns) != 0 {
		t.Errorf("left behind: %d containers, %d networks", len(cs), len(ns))
	}
}

// A one-shot run starts only the containers of its jobs, one per job,
// on the engine's default bridge, as `docker run` would: no network of
// its own and no standby container for a job that may never come
// (nothing follows its last job, and a chain's next job waits for the
// one running).
func TestRunInDockerStartsOnlyItsJobs(t *testing.T) {
	cli := dockertest.RequireImage(t)
	tests := []struct {
		name string
		jobs int
	}{
		{"one job", 1},
		{"chain of three", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := "version: 2.1\njobs:\n  t:\n    docker: [{image: " + dockertest.Image + "}]\n    steps: [{run: \"true\"}]\nworkflows:\n  w:\n    jobs:\n      - t: {name: t1}\n"
			for i := 2; i <= tt.jobs; i++ {
				cfg += fmt.Sprintf("      - t: {name: t%d, requires: [t%d]}\n", i, i-1)
			}
			file := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			since := time.Now()
			var out, errs bytes.Buffer
			if code := Main(context.Background(), []string{"run", file, "--repo", dir, "--branch", "main", "--executor", "docker"},
				strings.NewReader(""), &out, &errs); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, errs.String())
			}
			// Network events carry no labels: the containers this
			// process created say which are its own.
			mine := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", string(events.ActionCreate)),
				filters.Arg("label", docker.LabelOwner+"="+docker.Owner()))
			created := map[string]bool{}
			for _, ev := range engineEvents(t, cli, since, mine) {
				created[ev.Actor.ID] = true
			}
			if len(created) != tt.jobs {
				t.Errorf("%d containers created, want %d, one per job", len(created), tt.jobs)
			}
			joined := map[string]int{}
			for _, ev := range engineEvents(t, cli, since, filters.NewArgs(filters.Arg("type", string(events.NetworkEventType)), filters.Arg("event", string(events.ActionConnect)))) {
				if created[ev.Actor.Attributes["container"]] {
					joined[ev.Actor.Attributes["name"]]++
				}
			}
			if diff := cmp.Diff(map[string]int{"bridge": tt.jobs}, joined); diff != "" {
				t.Errorf("networks joined (-want +got):\n%s", diff)
			}
		})
	}
}

// engineEvents returns the engine's events since then that match f.
func engineEvents(t *testing.T, cli client.APIClient, since time.Time, f filters.Args) []events.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stamp := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	msgs, errc := cli.Events(ctx, events.ListOptions{Since: stamp(since), Until: stamp(time.Now()), Filters: f})
	var got []events.Message
	for {
		select {
		case m := <-msgs:
			got = append(got, m)
		case err := <-errc:
			if err != nil && err != io.EOF {
				t.Fatalf("events: %v", err)
			}
			return got
		}
	}
}
