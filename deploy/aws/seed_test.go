package aws_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/deploy/aws"
	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// The seed pipeline through the engine, its store and the local
// executor, deploying to the fake AWS with images built by this
// machine's Docker Engine: two pushes to main ship two commits to
// production (ECR, two Lambda functions, the Beanstalk app and workers),
// each release recording what it shipped; then a rollback to the first
// commit points everything back at its artifacts, building, pushing,
// uploading and publishing nothing.
func TestSeedDeployAndRollback(t *testing.T) {
	cli := dockertest.RequireDocker(t)
	clearAWSEnv(t)
	fake := awstest.New(t)
	fake.RequireRegistry()
	t.Cleanup(func() { removeImages(t, cli, fake.RegistryHost()+"/") })
	fake.AddRepository("backend")
	for _, fn := range []string{"api-handler", "queue-worker"} {
		fake.AddFunction(fn, imageRepo+":v0")
	}
	for _, env := range []string{"backend-app", "backend-workers"} {
		fake.AddBeanstalkEnvironment("backend", env, "v0")
	}

	repo, first, second := seedRepo(t)
	config, err := os.ReadFile(filepath.Join(repo, ".circleci", "config.yml"))
	must(t, err)
	dir := t.TempDir()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := store.Open(c, filepath.Join(dir, "slipway.db"))
	must(t, err)
	exe, err := local.New(local.Options{Dir: filepath.Join(dir, "attempts"), AllowRoot: true})
	must(t, err)
	docker := &countingDocker{Docker: cli}
	runner := aws.New(aws.Options{Docker: docker, LoadOptions: loadOptions(), Poll: 5 * time.Millisecond})
	e := engine.New(engine.Options{
		Store: db, Executor: exe, ExecutorName: "local", DataDir: filepath.Join(dir, "data"),
		Natives:  map[string]engine.NativeRunner{engine.OrbAWS: runner},
		Contexts: map[string]*engine.Context{},
		Apps: map[string]*engine.App{"backend": {Name: "backend", Repo: "acme/backend", Environments: map[string]*engine.Environment{
			"staging": {Name: "staging"},
			"production": {Name: "production", Context: engine.Context{Name: "production",
				Env:     map[string]string{"AWS_REGION": fake.Region(), "AWS_ENDPOINT_URL": fake.Endpoint(), "AWS_ACCESS_KEY_ID": awstest.AccessKeyID},
				Secrets: map[string]string{"AWS_SECRET_ACCESS_KEY": awstest.SecretAccessKey}}},
		}}},
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	must(t, e.Start(c))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.Shutdown(sctx)
		db.Close()
	})

	// ship runs a pipeline for trig to its end, approving production.
	ship := func(trig workflows.Trigger, wfs ...string) *engine.PipelineState {
		t.Helper()
		started, err := e.StartPipeline(c, engine.StartRequest{App: "backend", Repo: "acme/backend", Author: "alice", Trigger: trig,
			Source: engine.Source{GitDir: repo, Revision: trig.Revision}, Workflows: wfs,
			Config: engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
				return workflows.Load(".circleci/config.yml", config, workflows.LoadOptions{})
			})})
		must(t, err)
		if started.ConfigErr != nil || started.Pipeline == nil {
			t.Fatalf("start: %+v", started)
		}
		id := started.Pipeline.ID
		st, err := e.Wait(c, id, func(st *engine.PipelineState) bool {
			return job(st, "hold-production").Status == engine.StatusOnHold || engine.Settled(st)
		})
		must(t, err)
		if h := job(st, "hold-production"); h.Status == engine.StatusOnHold {
			d, err := e.Approve(c, h.ID, engine.Actor{ID: "carol"})
			if err != nil || !d.Applied {
				t.Fatalf("approve: %+v, %v", d, err)
			}
		}
		st, err = e.WaitFinished(c, id)
		must(t, err)
		if st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline %s:\n%s", st.Pipeline.Status, jobLogs(t, db, st))
		}
		return st
	}

	ship(workflows.Trigger{Branch: "main", Revision: first})
	ship(workflows.Trigger{Branch: "main", Revision: second})
	if b, _ := docker.counts(); b != 2 {
		t.Fatalf("%d image builds for two commits", b)
	}
	images := fake.Images("backend")
	engineImages := imageRefs(t, cli, fake.RegistryHost()+"/backend")
	slices.Sort(engineImages)
	before := len(fake.Calls())

	// /rollback backend production: the deploy workflow at the first
	// commit, with the artifacts of its release.
	back := ship(workflows.Trigger{Revision: first, Source: "chat",
		Deploy: &workflows.DeployValues{Environment: "production", Rollback: true}}, "deploy")

	releases, err := db.Releases(c, "backend", "production")
	must(t, err)
	if len(releases) != 3 {
		t.Fatalf("releases: %+v", releases)
	}
	r1, r2, r3 := releases[2], releases[1], releases[0]
	digest1 := digestOf(t, images, first)
	want1 := engine.Outputs{
		"ecr.backend.uri": fake.RegistryHost() + "/backend:" + first, "ecr.backend.digest": digest1,
		"lambda.api-handler.version": "1", "lambda.api-handler.previous": "",
		"lambda.queue-worker.version": "1", "lambda.queue-worker.previous": "",
		"beanstalk.backend/backend-app.version": first, "beanstalk.backend/backend-app.previous": "v0",
		"beanstalk.backend/backend-workers.version": first, "beanstalk.backend/backend-workers.previous": "v0",
	}
	if diff := cmp.Diff(want1, r1.Artifacts); diff != "" {
		t.Errorf("release #1's artifacts (-want +got):\n%s", diff)
	}
	if r2.Commit != second || r2.Artifacts["ecr.backend.digest"] != digestOf(t, images, second) || r2.Artifacts["lambda.api-handler.version"] != "2" {
		t.Errorf("release #2: %+v", r2)
	}
	want3 := engine.Outputs{
		"ecr.backend.uri": fake.RegistryHost() + "/backend:" + first, "ecr.backend.digest": digest1,
		"lambda.api-handler.version": "1", "lambda.api-handler.previous": "2",
		"lambda.queue-worker.version": "1", "lambda.queue-worker.previous": "2",
		"beanstalk.backend/backend-app.version": first, "beanstalk.backend/backend-app.previous": second,
		"beanstalk.backend/backend-workers.version": first, "beanstalk.backend/backend-workers.previous": second,
	}
	if diff := cmp.Diff(want3, r3.Artifacts); diff != "" {
		t.Errorf("the rollback's artifacts (-want +got):\n%s", diff)
	}
	if !r3.Rollback || r3.Outcome != workflows.StatusSuccess || r3.PipelineID != back.Pipeline.ID {
		t.Errorf("release #3: %+v", r3)
	}

	// The first commit's artifacts are live again.
	for _, fn := range []string{"api-handler", "queue-worker"} {
		f := fake.LambdaFunction(fn)
		if f.Aliases["live"] != "1" || len(f.Versions) != 2 || f.Versions[0].ImageURI != fake.RegistryHost()+"/backend:"+first {
			t.Errorf("%s: %+v", fn, f)
		}
	}
	for _, env := range []string{"backend-app", "backend-workers"} {
		if e := fake.BeanstalkEnvironment(env); e.VersionLabel != first || e.Status != "Ready" || e.Health != "Green" {
			t.Errorf("%s: %+v", env, e)
		}
	}
	// Nothing was built, pushed, uploaded, created or published for it.
	if b, _ := docker.counts(); b != 2 {
		t.Errorf("the rollback built an image: %d builds", b)
	}
	if got := fake.Images("backend"); len(got) != 2 || !slices.EqualFunc(got, images, func(a, b awstest.Image) bool {
		return a.Digest == b.Digest && a.PushedAt.Equal(b.PushedAt)
	}) {
		t.Errorf("ECR's images changed: %+v", got)
	}
	after := imageRefs(t, cli, fake.RegistryHost()+"/backend")
	slices.Sort(after)
	if len(engineImages) != 2 || !slices.Equal(engineImages, after) {
		t.Errorf("the engine's images: %v before the rollback, %v after", engineImages, after)
	}
	for _, c := range fake.Calls()[before:] {
		switch c.Operation {
		case "GetAuthorizationToken", "CreateApplicationVersion", "PutObject", "UpdateFunctionCode", "PublishVersion":
			t.Errorf("the rollback called %s %s", c.Service, c.Operation)
		}
	}
	logs := jobLogs(t, db, back)
	for _, line := range []string{"nothing is built or pushed", "nothing is uploaded", "nothing is updated or published"} {
		if !strings.Contains(logs, line) {
			t.Errorf("the rollback's logs lack %q", line)
		}
	}
	if strings.Contains(logs, awstest.SecretAccessKey) {
		t.Error("a job's log shows the secret key")
	}
}

// seedRepo is a git repository of the seed's tree with two commits, the
// second changing the app, and returns their SHAs.
func seedRepo(t *testing.T) (dir, first, second string) {
	t.Helper()
	dir = t.TempDir()
	src := "../../testdata/seed"
	must(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	}))
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "The seed app")
	first = git("rev-parse", "HEAD")
	must(t, os.WriteFile(filepath.Join(dir, "app", "index.html"), []byte("<p>The seed app, second edition.</p>\n"), 0o644))
	git("commit", "-q", "-am", "Second edition")
	second = git("rev-parse", "HEAD")
	return dir, first, second
}

func job(st *engine.PipelineState, name string) *engine.JobRecord {
	for i := range st.Jobs {
		if st.Jobs[i].Name == name {
			return &st.Jobs[i]
		}
	}
	return &engine.JobRecord{}
}

// digestOf is the digest of the image tagged tag.
func digestOf(t *testing.T, images []awstest.Image, tag string) string {
	t.Helper()
	for _, img := range images {
		if slices.Contains(img.Tags, tag) {
			return img.Digest
		}
	}
	t.Fatalf("no image tagged %s among %+v", tag, images)
	return ""
}

// jobLogs is every job's status, reason and log, for failures.
func jobLogs(t *testing.T, db *store.DB, st *engine.PipelineState) string {
	t.Helper()
	var b strings.Builder
	for _, j := range st.Jobs {
		b.WriteString("== " + j.Name + ": " + j.Status + " " + j.Reason + "\n")
		attempts, err := db.Attempts(context.Background(), j.ID)
		if err != nil {
			continue
		}
		for _, a := range attempts {
			r, err := db.JobLog(context.Background(), a.ID)
			if err != nil {
				continue
			}
			data, _ := io.ReadAll(r)
			r.Close()
			b.Write(data)
		}
	}
	return b.String()
}
