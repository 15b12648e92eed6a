package aws_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Images of a registry the fake does not serve: Lambda takes them as
// they are, so these tests need no docker-registry.
const imageRepo = awstest.AccountID + ".dkr.ecr.eu-west-1.amazonaws.com/backend"

func lambdaStep(functions, image string) step {
	return step{command: "lambda-update", params: map[string]string{"function": functions, "image-uri": image, "alias": "live"}}
}

func TestLambdaUpdate(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddFunction("api-handler", imageRepo+":v1")
	h.fake.AddFunction("queue-worker", imageRepo+":v1")
	c := ctx(t)

	out, log, err := h.run(c, lambdaStep("api-handler, queue-worker", imageRepo+":v2"))
	must(t, err)
	want := engine.Outputs{"lambda.api-handler.version": "1", "lambda.api-handler.previous": "",
		"lambda.queue-worker.version": "1", "lambda.queue-worker.previous": ""}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	out, log, err = h.run(c, lambdaStep("api-handler,queue-worker", imageRepo+":v3"))
	must(t, err)
	want = engine.Outputs{"lambda.api-handler.version": "2", "lambda.api-handler.previous": "1",
		"lambda.queue-worker.version": "2", "lambda.queue-worker.previous": "1"}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	for _, name := range []string{"api-handler", "queue-worker"} {
		fn := h.fake.LambdaFunction(name)
		if fn.Aliases["live"] != "2" || len(fn.Versions) != 2 || fn.Versions[1].ImageURI != imageRepo+":v3" || fn.ImageURI != imageRepo+":v3" {
			t.Errorf("%s: %+v", name, fn)
		}
		if !strings.Contains(fn.Versions[1].Description, sha) {
			t.Errorf("version 2 of %s is described %q", name, fn.Versions[1].Description)
		}
	}
	for _, line := range []string{"version 2 published", "alias live moved from version 1 to 2"} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
}

// A failed update publishes nothing and moves no alias, of any of the
// step's functions.
func TestLambdaFailedUpdateMovesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddFunction("api-handler", imageRepo+":v1")
	c := ctx(t)
	_, _, err := h.run(c, lambdaStep("api-handler", imageRepo+":v2"))
	must(t, err)
	published := calls(h.fake, awstest.Lambda, "PublishVersion")

	h.fake.FailLambdaImage(imageRepo+":v3", "exec format error: the image is built for arm64")
	_, _, err = h.run(c, lambdaStep("api-handler", imageRepo+":v3"))
	wantErr(t, err, "the update of api-handler to "+imageRepo+":v3 failed: exec format error: the image is built for arm64 (InvalidImage); nothing was published and no alias was moved")
	fn := h.fake.LambdaFunction("api-handler")
	if fn.Aliases["live"] != "1" || len(fn.Versions) != 1 || fn.ImageURI != imageRepo+":v2" {
		t.Errorf("after the failed update: %+v", fn)
	}
	if n := calls(h.fake, awstest.Lambda, "PublishVersion"); n != published {
		t.Errorf("%d more PublishVersion", n-published)
	}

	// The second function cannot take the image: the first, updated and
	// published, is not made live alone.
	h.fake.AddZipFunction("queue-worker", zipOf(t, map[string]string{"bootstrap": "v1"}))
	_, _, err = h.run(c, lambdaStep("api-handler,queue-worker", imageRepo+":v4"))
	wantErr(t, err, "queue-worker is a Zip function: give it zip-file, not an image")
	fn = h.fake.LambdaFunction("api-handler")
	if fn.Aliases["live"] != "1" || len(fn.Versions) != 2 {
		t.Errorf("api-handler after queue-worker refused: %+v", fn)
	}
}

// ResourceConflictException, while another update is in progress, is
// waited out and the update tried again.
func TestLambdaResourceConflictRetried(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.AddFunction("api-handler", imageRepo+":v1")
		h.fake.Inject(awstest.Fault{Service: awstest.Lambda, Operation: "UpdateFunctionCode", Code: "ResourceConflictException",
			Message: "The operation cannot be performed at this time. An update is in progress for resource: api-handler", Calls: 2})
		out, log, err := h.run(ctx(t), lambdaStep("api-handler", imageRepo+":v2"))
		must(t, err)
		if out["lambda.api-handler.version"] != "1" || len(h.fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")) != 3 {
			t.Errorf("outputs %v after %d UpdateFunctionCode", out, len(h.fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")))
		}
		if !strings.Contains(log, "api-handler refused the update (ResourceConflictException") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("someone else's update in progress", func(t *testing.T) {
		h := newHarness(t, nil, awstest.LambdaUpdateTime(-1))
		h.fake.AddFunction("api-handler", imageRepo+":v1")
		c := ctx(t)
		api := lambda.New(lambda.Options{Region: h.fake.Region(), Credentials: h.fake.Credentials(), BaseEndpoint: awssdk.String(h.fake.Endpoint())})
		_, err := api.UpdateFunctionCode(c, &lambda.UpdateFunctionCodeInput{FunctionName: awssdk.String("api-handler"), ImageUri: awssdk.String(imageRepo + ":hotfix")})
		must(t, err)
		log := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			_, err := h.runTo(c, lambdaStep("api-handler", imageRepo+":v2"), log)
			done <- err
		}()
		waitLog(t, log, "api-handler is being updated by someone else")
		h.fake.SetLambdaUpdateTime(10 * time.Millisecond)
		h.fake.Settle()
		must(t, <-done)
		if fn := h.fake.LambdaFunction("api-handler"); fn.Aliases["live"] != "1" || fn.Versions[0].ImageURI != imageRepo+":v2" {
			t.Errorf("after the wait: %+v", fn)
		}
	})
}

func TestLambdaTimeoutAndCancel(t *testing.T) {
	setup := func(t *testing.T) *harness {
		h := newHarness(t, nil)
		h.fake.AddFunction("api-handler", imageRepo+":v1")
		_, _, err := h.run(ctx(t), lambdaStep("api-handler", imageRepo+":v2"))
		must(t, err)
		h.fake.SetLambdaUpdateTime(-1) // until Settle: never, here
		return h
	}
	t.Run("timeout", func(t *testing.T) {
		h := setup(t)
		s := lambdaStep("api-handler", imageRepo+":v3")
		s.params["timeout"] = "100ms"
		_, _, err := h.run(ctx(t), s)
		wantErr(t, err, "api-handler was still being updated after 100ms; nothing was published and the alias live of api-handler still points at version 1")
	})
	t.Run("canceled", func(t *testing.T) {
		h := setup(t)
		c, cancel := context.WithCancel(ctx(t))
		log := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			_, err := h.runTo(c, lambdaStep("api-handler", imageRepo+":v3"), log)
			done <- err
		}()
		waitLog(t, log, "Updating api-handler to")
		cancel()
		err := <-done
		msg := "canceled while api-handler was being updated to " + imageRepo + ":v3 (Lambda goes on with that update, so $LATEST may end on the new code); " +
			"nothing was published and the alias live of api-handler still points at version 1"
		wantErr(t, err, msg)
		if !errors.Is(err, context.Canceled) || !strings.Contains(log.String(), msg) {
			t.Errorf("error %v; log:\n%s", err, log.String())
		}
		if fn := h.fake.LambdaFunction("api-handler"); fn.Aliases["live"] != "1" || len(fn.Versions) != 1 {
			t.Errorf("after the cancel: %+v", fn)
		}
	})
}

// A rollback moves the alias back to the version the release recorded,
// updating and publishing nothing.
func TestLambdaRollbackRestores(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddFunction("api-handler", imageRepo+":v1")
	c := ctx(t)
	for _, img := range []string{"v2", "v3"} {
		_, _, err := h.run(c, lambdaStep("api-handler", imageRepo+":"+img))
		must(t, err)
	}
	updates, publishes := len(h.fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")), len(h.fake.CallsTo(awstest.Lambda, "PublishVersion"))
	s := lambdaStep("api-handler", imageRepo+":v2")
	s.restore = engine.Outputs{"lambda.api-handler.version": "1", "ecr.backend.digest": "sha256:ab"}
	out, log, err := h.run(c, s)
	must(t, err)
	if diff := cmp.Diff(engine.Outputs{"lambda.api-handler.version": "1", "lambda.api-handler.previous": "2"}, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if fn := h.fake.LambdaFunction("api-handler"); fn.Aliases["live"] != "1" || len(fn.Versions) != 2 {
		t.Errorf("after the rollback: %+v", fn)
	}
	if u, p := len(h.fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")), len(h.fake.CallsTo(awstest.Lambda, "PublishVersion")); u != updates || p != publishes {
		t.Errorf("the rollback updated %d times and published %d times", u-updates, p-publishes)
	}
	if !strings.Contains(log, "Rollback: api-handler's alias live goes back to version 1, recorded by the release") {
		t.Errorf("log:\n%s", log)
	}

	s.restore = engine.Outputs{"lambda.api-handler.version": "7"}
	_, _, err = h.run(c, s)
	wantErr(t, err, "rollback: version 7 of api-handler, which the release recorded: not found", "no alias was moved")
}

// A Zip function takes a folder of the job's files, zipped.
func TestLambdaZipFromFiles(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddZipFunction("worker", zipOf(t, map[string]string{"bootstrap": "v1"}))
	h.write(map[string]string{"build/bootstrap": "#!/bin/sh\necho v2\n", "build/lib/data.txt": "data"})
	out, _, err := h.run(ctx(t), step{command: "lambda-update", params: map[string]string{"function": "worker", "zip-file": "build"}})
	must(t, err)
	calls := h.fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")
	if out["lambda.worker.version"] != "1" || len(calls) != 1 || !strings.Contains(calls[0].Params["ZipFile"].(string), "bytes, base64") {
		t.Errorf("outputs %v, calls %+v", out, calls)
	}
	if fn := h.fake.LambdaFunction("worker"); fn.Aliases["live"] != "1" {
		t.Errorf("worker: %+v", fn)
	}
}

// zipOf is a zip archive of files.
func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		must(t, err)
		_, err = w.Write([]byte(content))
		must(t, err)
	}
	must(t, zw.Close())
	return buf.Bytes()
}
