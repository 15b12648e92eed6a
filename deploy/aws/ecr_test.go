package aws_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// dockerHarness is a harness whose runner builds with this machine's
// Docker Engine and pushes to the fake's registry. Without either it
// skips, or fails under SLIPWAY_REQUIRE_DOCKER=1.
func dockerHarness(t *testing.T) (*harness, client.APIClient) {
	t.Helper()
	cli := dockertest.RequireDocker(t)
	h := newHarness(t, cli)
	h.fake.RequireRegistry()
	t.Cleanup(func() { removeImages(t, cli, h.fake.RegistryHost()+"/") })
	return h, cli
}

// The image is built offline from the job's files (FROM scratch; build
// args and a target), pushed under the commit and an extra tag, and
// reported by its digest; a second push of the tag builds and pushes
// nothing.
func TestECRPush(t *testing.T) {
	h, cli := dockerHarness(t)
	h.write(map[string]string{
		"docker/Dockerfile": "FROM scratch AS base\nCOPY app.txt /app.txt\n" +
			"FROM base AS release\nARG GREETING\nLABEL greeting=$GREETING\n" +
			"FROM base AS broken\nCOPY missing.txt /missing.txt\n",
		"docker/app.txt": "backend " + t.Name() + " " + time.Now().String() + "\n",
	})
	h.env["GREETING"] = "hello"
	s := step{command: "ecr-push", params: map[string]string{"repo": "slipway/backend", "tag": "${CIRCLE_SHA1}", "extra-tags": "latest",
		"path": "docker", "dockerfile": "Dockerfile", "build-args": "GREETING\nUNSET", "target": "release", "create-repo": "true"}}
	c := ctx(t)
	out, log, err := h.run(c, s)
	must(t, err)
	ref := h.fake.RegistryHost() + "/slipway/backend:" + sha
	images := h.fake.Images("slipway/backend")
	if len(images) != 1 {
		t.Fatalf("images in ECR: %+v", images)
	}
	if diff := cmp.Diff(engine.Outputs{"ecr.slipway/backend.uri": ref, "ecr.slipway/backend.digest": images[0].Digest}, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{sha, "latest"}, images[0].Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	inspect, err := cli.ImageInspect(c, ref)
	must(t, err)
	if inspect.Config.Labels["greeting"] != "hello" || inspect.Config.Labels["org.opencontainers.image.revision"] != sha {
		t.Errorf("labels %v", inspect.Config.Labels)
	}
	for _, line := range []string{"Created the ECR repository slipway/backend", "Building " + ref + " from docker (Dockerfile Dockerfile)",
		"Step 2/", "Pushed " + ref + " (" + images[0].Digest + ")"} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
	if b, p := h.docker.counts(); b != 1 || p != 2 {
		t.Errorf("%d builds, %d pushes; want 1 and 2", b, p)
	}

	out2, log, err := h.run(c, s)
	must(t, err)
	if diff := cmp.Diff(out, out2); diff != "" {
		t.Errorf("second push's outputs (-first +second):\n%s", diff)
	}
	if b, p := h.docker.counts(); b != 1 || p != 2 {
		t.Errorf("the second push built or pushed: %d builds, %d pushes", b, p)
	}
	if again := h.fake.Images("slipway/backend"); len(again) != 1 || !again[0].PushedAt.Equal(images[0].PushedAt) {
		t.Errorf("images after the second push: %+v", again)
	}
	if !strings.Contains(log, ref+" is already in ECR ("+images[0].Digest+"): not built or pushed again") {
		t.Errorf("log:\n%s", log)
	}
}

// The build context leaves out what .dockerignore excludes, as docker
// build does, with its exceptions.
func TestECRPushDockerignore(t *testing.T) {
	h, _ := dockerHarness(t)
	h.fake.AddRepository("backend")
	h.write(map[string]string{
		".dockerignore":      "*.env\nsecrets\n!secrets/public.txt\nDockerfile\n",
		"prod.env":           "DB_PASSWORD=hunter2\n",
		"secrets/key.pem":    "-----BEGIN PRIVATE KEY-----\n",
		"secrets/public.txt": "public " + time.Now().String() + "\n",
		"Dockerfile":         "FROM scratch\nCOPY secrets/public.txt /public.txt\nCOPY prod.env /prod.env\n",
	})
	s := step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "v1"}}
	_, _, err := h.run(ctx(t), s)
	wantErr(t, err, "docker build: ", "prod.env")
	h.write(map[string]string{"Dockerfile": "FROM scratch\nCOPY secrets/public.txt /public.txt\nCOPY secrets/key.pem /key.pem\n"})
	_, _, err = h.run(ctx(t), s)
	wantErr(t, err, "docker build: ", "key.pem")
	h.write(map[string]string{"Dockerfile": "FROM scratch\nCOPY secrets/public.txt /public.txt\n"})
	_, _, err = h.run(ctx(t), s)
	must(t, err)
}

// An image an earlier step built is tagged and pushed as it is.
func TestECRPushImageBuiltEarlier(t *testing.T) {
	h, cli := dockerHarness(t)
	h.fake.AddRepository("backend")
	c := ctx(t)
	local := "slipway-test-earlier-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")) + ":build"
	importImage(t, cli, local)
	out, _, err := h.run(c, step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "${CIRCLE_SHA1}", "image": local}})
	must(t, err)
	images := h.fake.Images("backend")
	if len(images) != 1 || out["ecr.backend.digest"] != images[0].Digest {
		t.Errorf("outputs %v, images %+v", out, images)
	}
	if b, p := h.docker.counts(); b != 0 || p != 1 {
		t.Errorf("%d builds, %d pushes; want 0 and 1", b, p)
	}
	_, _, err = h.run(c, step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "other", "image": "slipway-no-such-image:x"}})
	wantErr(t, err, "the Docker engine has no image slipway-no-such-image:x: build it in an earlier step of the job")
}

// A rollback finds the image the release recorded in ECR, and builds and
// pushes nothing, even without a Docker engine; an image gone from ECR
// fails it.
func TestECRPushRollback(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.RequireRegistry()
	uri := h.fake.AddRepository("backend")
	digest := h.fake.PushImage("backend", sha)
	s := step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "${CIRCLE_SHA1}"},
		restore: engine.Outputs{"ecr.backend.uri": uri + ":" + sha, "ecr.backend.digest": digest, "lambda.api-handler.version": "1"}}
	out, log, err := h.run(ctx(t), s)
	must(t, err)
	if diff := cmp.Diff(engine.Outputs{"ecr.backend.uri": uri + ":" + sha, "ecr.backend.digest": digest}, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if !strings.Contains(log, "Rollback: "+uri+":"+sha+" ("+digest+"), recorded by the release, is still in ECR; nothing is built or pushed") {
		t.Errorf("log:\n%s", log)
	}
	s.restore = engine.Outputs{"ecr.backend.digest": "sha256:" + strings.Repeat("0", 64)}
	_, _, err = h.run(ctx(t), s)
	wantErr(t, err, "rollback: the image "+uri+"@sha256:000", "is no longer in ECR; nothing was rebuilt")
}

// Without the repository, or without a Docker engine to build, the step
// fails saying so, before building anything.
func TestECRPushRefusals(t *testing.T) {
	h := newHarness(t, nil)
	_, _, err := h.run(ctx(t), step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "v1"}})
	wantErr(t, err, "ECR has no repository backend: create it, or set create-repo: true")
	uri := h.fake.AddRepository("backend")
	_, _, err = h.run(ctx(t), step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "v1"}})
	wantErr(t, err, uri+":v1 is not in ECR, and this slipway has no Docker engine to build and push it")
	if n := len(h.fake.CallsTo(awstest.ECR, "GetAuthorizationToken")); n != 0 {
		t.Errorf("%d GetAuthorizationToken", n)
	}
}

// importImage imports a one-file image as ref, FROM scratch, and removes
// it when the test ends.
func importImage(t *testing.T, cli client.APIClient, ref string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("slipway " + t.Name() + " " + time.Now().String() + "\n")
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()}))
	_, err := tw.Write(content)
	must(t, err)
	must(t, tw.Close())
	rc, err := cli.ImageImport(ctx(t), image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{})
	must(t, err)
	defer rc.Close()
	must(t, jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil))
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
}

// removeImages removes the engine's images with a reference that starts
// with prefix: those a test built and pushed.
func removeImages(t *testing.T, cli client.APIClient, prefix string) {
	t.Helper()
	for _, ref := range imageRefs(t, cli, prefix) {
		cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	}
}

// imageRefs are the references of the engine's images that start with
// prefix.
func imageRefs(t *testing.T, cli client.APIClient, prefix string) []string {
	t.Helper()
	list, err := cli.ImageList(context.Background(), image.ListOptions{})
	must(t, err)
	var refs []string
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, prefix) {
				refs = append(refs, tag)
			}
		}
	}
	return refs
}
