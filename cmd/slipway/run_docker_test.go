package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
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
