package aws_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// ebBucket is where Beanstalk's source bundles go by default.
const ebBucket = "elasticbeanstalk-" + awstest.DefaultRegion + "-" + awstest.AccountID

func beanstalkStep(env, label string) step {
	return step{command: "beanstalk-deploy", params: map[string]string{"application": "backend", "environment": env,
		"version-label": label, "image": imageRepo + ":" + label, "port": "8080", "rollback-on-failure": "true"}}
}

// A deploy of an image: a Dockerrun.aws.json for it in S3, a version
// labelled with the commit, the environment Ready and Green on it, its
// events in the log. Another environment reuses the version.
func TestBeanstalkDeployGreen(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	h.fake.AddBeanstalkEnvironment("backend", "backend-workers", "v1")
	c := ctx(t)

	out, log, err := h.run(c, beanstalkStep("backend-app", "${CIRCLE_SHA1}"))
	must(t, err)
	if diff := cmp.Diff(engine.Outputs{"beanstalk.backend/backend-app.version": sha, "beanstalk.backend/backend-app.previous": "v1"}, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if env := h.fake.BeanstalkEnvironment("backend-app"); env.VersionLabel != sha || env.Status != "Ready" || env.Health != "Green" {
		t.Errorf("backend-app: %+v", env)
	}
	bundle, ok := h.fake.Object(ebBucket, "backend/"+sha+".zip")
	if !ok {
		t.Fatalf("no bundle in %s: %v", ebBucket, h.fake.Objects(ebBucket))
	}
	want := `{
  "AWSEBDockerrunVersion": "1",
  "Image": {
    "Name": "` + imageRepo + `:` + sha + `",
    "Update": "true"
  },
  "Ports": [
    {
      "ContainerPort": 8080
    }
  ]
}
`
	if diff := cmp.Diff(map[string]string{"Dockerrun.aws.json": want}, unzip(t, bundle)); diff != "" {
		t.Errorf("bundle (-want +got):\n%s", diff)
	}
	for _, line := range []string{"Created version " + sha + " of backend", "Environment update is starting.",
		"Environment update completed successfully.", "backend-app is Ready and Green on version " + sha} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}

	out, log, err = h.run(c, beanstalkStep("backend-workers", "${CIRCLE_SHA1}"))
	must(t, err)
	if out["beanstalk.backend/backend-workers.version"] != sha || !strings.Contains(log, "Version "+sha+" of backend exists: reused") {
		t.Errorf("outputs %v; log:\n%s", out, log)
	}
	if c, p := calls(h.fake, awstest.Beanstalk, "CreateApplicationVersion"), calls(h.fake, awstest.S3, "PutObject"); c != 1 || p != 1 {
		t.Errorf("%d versions created, %d bundles uploaded; want 1 and 1", c, p)
	}
	if env := h.fake.BeanstalkEnvironment("backend-workers"); env.VersionLabel != sha || env.Health != "Green" {
		t.Errorf("backend-workers: %+v", env)
	}

	// Deploying what is live changes nothing.
	_, log, err = h.run(c, beanstalkStep("backend-workers", "${CIRCLE_SHA1}"))
	must(t, err)
	if n := calls(h.fake, awstest.Beanstalk, "UpdateEnvironment"); n != 2 || !strings.Contains(log, "already Ready and Green on version "+sha) {
		t.Errorf("%d UpdateEnvironment; log:\n%s", n, log)
	}
}

// A deploy that turns Red is rolled back to the version live before, and
// the step fails saying why and what it did.
func TestBeanstalkDeployRed(t *testing.T) {
	for _, rollback := range []bool{true, false} {
		t.Run(map[bool]string{true: "rolled back", false: "rollback off"}[rollback], func(t *testing.T) {
			h := newHarness(t, nil)
			h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
			h.fake.FailBeanstalkVersion("backend", "v2", "npm ERR! missing script: start")
			s := beanstalkStep("backend-app", "v2")
			if !rollback {
				s.params["rollback-on-failure"] = "false"
			}
			out, log, err := h.run(ctx(t), s)
			wantErr(t, err, "backend-app turned Red deploying version v2 (it is Ready and Red on version v1): "+
				"[Instance: i-0a5e5eed0a5e5eed0] Command failed on instance. Return code: 1 Output: npm ERR! missing script: start;")
			if out != nil {
				t.Errorf("outputs %v", out)
			}
			env := h.fake.BeanstalkEnvironment("backend-app")
			updates := h.fake.CallsTo(awstest.Beanstalk, "UpdateEnvironment")
			if rollback {
				wantErr(t, err, "rolled back to version v1, which is Ready and Green again")
				if !strings.Contains(log, "rolling back to version v1, which was live before") {
					t.Errorf("log:\n%s", log)
				}
				if env.VersionLabel != "v1" || env.Health != "Green" || len(updates) != 2 || updates[1].Params["VersionLabel"] != "v1" {
					t.Errorf("after the rollback: %+v, %d updates", env, len(updates))
				}
			} else {
				wantErr(t, err, "rollback-on-failure is off, so it was left Ready and Red on version v1")
				if env.Health != "Red" || len(updates) != 1 {
					t.Errorf("without rollback: %+v, %d updates", env, len(updates))
				}
			}
			if !strings.Contains(log, "ERROR Failed to deploy application.") {
				t.Errorf("the log lacks the environment's events:\n%s", log)
			}
		})
	}
}

// A deploy that is not healthy within the timeout is rolled back too,
// once the environment takes updates again.
func TestBeanstalkDeployTimeout(t *testing.T) {
	h := newHarness(t, nil, awstest.BeanstalkDeployTime(-1))
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	s := beanstalkStep("backend-app", "v2")
	s.params["timeout"] = "300ms"
	log := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := h.runTo(ctx(t), s, log)
		done <- err
	}()
	waitLog(t, log, "rolling back to version v1")
	h.fake.SetBeanstalkDeployTime(10_000_000) // 10ms
	h.fake.Settle()
	err := <-done
	wantErr(t, err, "backend-app was not Ready and Green on version v2 after 300ms (it is Updating and Grey on version v2)",
		"rolled back to version v1, which is Ready and Green again")
	if env := h.fake.BeanstalkEnvironment("backend-app"); env.VersionLabel != "v1" || env.Health != "Green" {
		t.Errorf("after the rollback: %+v", env)
	}
}

// A step canceled mid-wait leaves the deploy to Beanstalk and says where
// the environment stands.
func TestBeanstalkDeployCanceled(t *testing.T) {
	h := newHarness(t, nil, awstest.BeanstalkDeployTime(-1))
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	c, cancel := context.WithCancel(ctx(t))
	log := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := h.runTo(c, beanstalkStep("backend-app", "v2"), log)
		done <- err
	}()
	waitLog(t, log, "Environment update is starting.")
	cancel()
	err := <-done
	msg := "canceled while backend-app was deploying version v2; Elastic Beanstalk goes on with the deploy, " +
		"and the environment was left Updating and Grey on version v2; version v1 was live before"
	wantErr(t, err, msg)
	if !errors.Is(err, context.Canceled) || !strings.Contains(log.String(), msg) {
		t.Errorf("error %v; log:\n%s", err, log.String())
	}
	if n := len(h.fake.CallsTo(awstest.Beanstalk, "UpdateEnvironment")); n != 1 {
		t.Errorf("%d UpdateEnvironment after the cancel", n)
	}
}

// A source bundle is a folder of the job's files, zipped, uploaded to
// the bucket the step names (made when missing).
func TestBeanstalkDeployBundle(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	h.write(map[string]string{"dist/Procfile": "web: ./server\n", "dist/server": "#!/bin/sh\n"})
	_, _, err := h.run(ctx(t), step{command: "beanstalk-deploy", params: map[string]string{"application": "backend",
		"environment": "backend-app", "version-label": "v2", "bundle": "dist", "bucket": "acme-bundles"}})
	must(t, err)
	bundle, ok := h.fake.Object("acme-bundles", "backend/v2.zip")
	if !ok {
		t.Fatalf("buckets %v", h.fake.Buckets())
	}
	if diff := cmp.Diff(map[string]string{"Procfile": "web: ./server\n", "server": "#!/bin/sh\n"}, unzip(t, bundle)); diff != "" {
		t.Errorf("bundle (-want +got):\n%s", diff)
	}
	if env := h.fake.BeanstalkEnvironment("backend-app"); env.VersionLabel != "v2" || env.Health != "Green" {
		t.Errorf("backend-app: %+v", env)
	}
}

// A rollback deploys the version the release recorded again: nothing is
// uploaded or created.
func TestBeanstalkRollbackRestores(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	c := ctx(t)
	_, _, err := h.run(c, beanstalkStep("backend-app", "v2"))
	must(t, err)
	s := beanstalkStep("backend-app", "v1")
	s.params["image"] = ""
	s.restore = engine.Outputs{"beanstalk.backend/backend-app.version": "v1", "beanstalk.backend/backend-workers.version": "v0"}
	out, log, err := h.run(c, s)
	must(t, err)
	if diff := cmp.Diff(engine.Outputs{"beanstalk.backend/backend-app.version": "v1", "beanstalk.backend/backend-app.previous": "v2"}, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if cv, p := calls(h.fake, awstest.Beanstalk, "CreateApplicationVersion"), calls(h.fake, awstest.S3, "PutObject"); cv != 1 || p != 1 {
		t.Errorf("%d versions created, %d uploads: the rollback made some", cv, p)
	}
	if env := h.fake.BeanstalkEnvironment("backend-app"); env.VersionLabel != "v1" || env.Health != "Green" {
		t.Errorf("backend-app: %+v", env)
	}
	if !strings.Contains(log, "Rollback: deploying version v1 again, recorded by the release; nothing is uploaded") {
		t.Errorf("log:\n%s", log)
	}

	s.restore = engine.Outputs{"beanstalk.backend/backend-app.version": "v0"}
	_, _, err = h.run(c, s)
	wantErr(t, err, "rollback: version v0 of backend, which the release recorded, no longer exists; nothing was deployed")
}

func TestBeanstalkMissingEnvironment(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.AddBeanstalkEnvironment("backend", "backend-app", "v1")
	_, _, err := h.run(ctx(t), beanstalkStep("backend-api", "v2"))
	wantErr(t, err, "Elastic Beanstalk has no environment backend-api of application backend")
	s := beanstalkStep("backend-app", "v2")
	s.params["image"] = ""
	_, _, err = h.run(ctx(t), s)
	wantErr(t, err, "version v2 of backend does not exist, and the step gives no image, repo or bundle to make it from")
	if n := len(h.fake.CallsTo(awstest.Beanstalk, "UpdateEnvironment")); n != 0 {
		t.Errorf("%d UpdateEnvironment", n)
	}
}

// unzip is the files of a zip archive by name.
func unzip(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	must(t, err)
	files := map[string]string{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		files[f.Name] = string(b)
	}
	return files
}
