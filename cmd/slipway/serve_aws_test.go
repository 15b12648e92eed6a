package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
)

// The seed pipeline shipped to AWS by the server, end to end through the
// fakes of GitHub, Slack and AWS (its ECR backed by a real registry, the
// images built by this machine's Docker engine): two pushes to main go
// through staging and an approval to the production fan-out (ECR,
// Lambda, Beanstalk app and workers); then /rollback backend production,
// approved, puts the first commit's image, version label and Lambda
// versions back, with no image built or pushed.
func TestServeShipsToAWS(t *testing.T) {
	cli := dockertest.RequireDocker(t)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
		}
	}
	// The server's own AWS configuration is empty: the environment's
	// variables in slipway.yml are all it has.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	fake := awstest.New(t)
	fake.RequireRegistry()
	repo := fake.RegistryHost() + "/backend"
	t.Cleanup(func() { removeImages(cli, repo) })
	fake.AddRepository("backend")
	for _, fn := range []string{"api-handler", "queue-worker"} {
		fake.AddFunction(fn, awstest.AccountID+".dkr.ecr."+fake.Region()+".amazonaws.com/backend:v0")
	}
	for _, env := range []string{"backend-app", "backend-workers"} {
		fake.AddBeanstalkEnvironment("backend", env, "v0")
	}
	e := newChatE2E(t, chatOptions{
		production: fmt.Sprintf(`, env: {AWS_REGION: %s, AWS_ENDPOINT_URL: %q, AWS_ACCESS_KEY_ID: %s}, secrets: {AWS_SECRET_ACCESS_KEY: %s}`,
			fake.Region(), fake.Endpoint(), awstest.AccessKeyID, awstest.SecretAccessKey),
		opts: ServerOptions{AWSPoll: 10 * time.Millisecond},
	})

	dir := t.TempDir()
	copyDir(t, "../../testdata/seed", dir)
	first := e.gh.AddCommitFromDir("acme/backend", "main", dir)
	os.WriteFile(filepath.Join(dir, "app", "index.html"), []byte("<p>The seed app, second edition.</p>\n"), 0o644)
	second := e.gh.AddCommitFromDir("acme/backend", "main", dir)

	// ship pushes sha and approves its production deploy: release n.
	ship := func(n int, sha string) {
		t.Helper()
		if code := deliver(t, e.srv.Addr(), "push", "d-"+sha, pushPayload(t, "acme/backend", "main", sha)); code != http.StatusAccepted {
			t.Fatalf("push answered %d", code)
		}
		e.posted(fmt.Sprintf("Deployed `%s` to staging", sha[:7]))
		e.waitFor("the approval request", func() bool { return len(e.requests()) == 1 })
		e.slack.SendBlockAction("U0RELEASE", "C0DEPLOYS", e.requests()[0].TS, "approve", "")
		e.posted(fmt.Sprintf("Deployed `%s` to production: release #%d", sha[:7], n))
	}
	ship(1, first)
	ship(2, second)
	images := fake.Images("backend")
	if len(images) != 2 {
		t.Fatalf("ECR holds %+v after two commits", images)
	}
	for _, fn := range []string{"api-handler", "queue-worker"} {
		if f := fake.LambdaFunction(fn); f.Aliases["live"] != "2" {
			t.Fatalf("%s after two releases: %+v", fn, f)
		}
	}
	before := len(fake.Calls())

	e.say("U0ALICE", "C0DEPLOYS", "/rollback backend production")
	e.posted(fmt.Sprintf("is rolling backend back in production to release #1 (`%s`)", first[:7]))
	e.waitFor("the rollback's approval request", func() bool { return len(e.requests()) == 1 })
	e.slack.SendBlockAction("U0RELEASE", "C0DEPLOYS", e.requests()[0].TS, "approve", "")
	e.posted(fmt.Sprintf("Rolled production back to `%s`: release #3", first[:7]))

	// The first commit's artifacts are live again, and nothing was
	// built, pushed, uploaded or published for it.
	for _, fn := range []string{"api-handler", "queue-worker"} {
		if f := fake.LambdaFunction(fn); f.Aliases["live"] != "1" || len(f.Versions) != 2 || f.Versions[0].ImageURI != repo+":"+first {
			t.Errorf("%s after the rollback: %+v", fn, f)
		}
	}
	for _, env := range []string{"backend-app", "backend-workers"} {
		if b := fake.BeanstalkEnvironment(env); b.VersionLabel != first || b.Status != "Ready" || b.Health != "Green" {
			t.Errorf("%s after the rollback: %+v", env, b)
		}
	}
	if got := fake.Images("backend"); len(got) != 2 || got[0].Digest != images[0].Digest || !got[0].PushedAt.Equal(images[0].PushedAt) ||
		got[1].Digest != images[1].Digest || !got[1].PushedAt.Equal(images[1].PushedAt) {
		t.Errorf("ECR's images changed: %+v, were %+v", got, images)
	}
	for _, c := range fake.Calls()[before:] {
		switch c.Operation {
		case "GetAuthorizationToken", "CreateApplicationVersion", "PutObject", "UpdateFunctionCode", "PublishVersion":
			t.Errorf("the rollback called %s %s", c.Service, c.Operation)
		}
	}
	if got := e.releases("production"); strings.Join(got, ", ") != fmt.Sprintf("#3 %s success rollback, #2 %s success, #1 %s success", first[:7], second[:7], first[:7]) {
		t.Errorf("releases: %v", got)
	}
	// The rollback locked production; history shows what each release shipped.
	e.say("U0ALICE", "C0DEPLOYS", "/slipway history backend production")
	e.ephemeral("U0ALICE", "lambda.api-handler.version: `1`")
}

// copyDir copies the files under src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// removeImages removes the engine's images whose references start with
// prefix.
func removeImages(cli client.APIClient, prefix string) {
	list, err := cli.ImageList(context.Background(), image.ListOptions{})
	if err != nil {
		return
	}
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, prefix) {
				cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
}
