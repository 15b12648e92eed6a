package awstest_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

const ebBucket = "slipway-bundles"

// newVersion uploads a source bundle and creates application version
// label of app from it, as slipway's deploy does.
func newVersion(t *testing.T, c *clients, app, label string) {
	t.Helper()
	ctx := ctx(t)
	key := app + "/" + label + ".zip"
	_, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(ebBucket), Key: aws.String(key), Body: bytes.NewReader([]byte("PK " + label))})
	must(t, err)
	_, err = c.eb.CreateApplicationVersion(ctx, &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String(app), VersionLabel: aws.String(label), Description: aws.String("commit " + label),
		SourceBundle: &types.S3Location{S3Bucket: aws.String(ebBucket), S3Key: aws.String(key)},
	})
	must(t, err)
}

// describe answers DescribeEnvironments for env.
func describe(t *testing.T, c *clients, env string) types.EnvironmentDescription {
	t.Helper()
	out, err := c.eb.DescribeEnvironments(ctx(t), &elasticbeanstalk.DescribeEnvironmentsInput{EnvironmentNames: []string{env}})
	must(t, err)
	if len(out.Environments) != 1 {
		t.Fatalf("DescribeEnvironments(%s) = %+v", env, out.Environments)
	}
	return out.Environments[0]
}

// waitReady waits for env to be Ready with the SDK's own waiter, polling
// every few milliseconds.
func waitReady(t *testing.T, c *clients, env string) types.EnvironmentDescription {
	t.Helper()
	w := elasticbeanstalk.NewEnvironmentUpdatedWaiter(c.eb, func(o *elasticbeanstalk.EnvironmentUpdatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	must(t, w.Wait(ctx(t), &elasticbeanstalk.DescribeEnvironmentsInput{EnvironmentNames: []string{env}}, 10*time.Second))
	return describe(t, c, env)
}

// events answers DescribeEvents of env since start, newest first.
func events(t *testing.T, c *clients, env string, start time.Time) []types.EventDescription {
	t.Helper()
	out, err := c.eb.DescribeEvents(ctx(t), &elasticbeanstalk.DescribeEventsInput{EnvironmentName: aws.String(env), StartTime: aws.Time(start)})
	must(t, err)
	return out.Events
}

func messages(evs []types.EventDescription) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Severity)+" "+aws.ToString(e.Message))
	}
	return out
}

func TestBeanstalkApplicationVersions(t *testing.T) {
	fake, c := setup(t)
	ctx := ctx(t)
	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	fake.PutObject(ebBucket, "seed", nil)

	newVersion(t, c, "backend", "3f2a9c1")
	_, err := c.eb.CreateApplicationVersion(ctx, &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String("backend"), VersionLabel: aws.String("3f2a9c1"),
		SourceBundle: &types.S3Location{S3Bucket: aws.String(ebBucket), S3Key: aws.String("backend/3f2a9c1.zip")},
	})
	apiErr := wantAPIError(t, err, "InvalidParameterValue")
	if apiErr.ErrorMessage() != "Application Version 3f2a9c1 already exists." {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}
	_, err = c.eb.CreateApplicationVersion(ctx, &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String("backend"), VersionLabel: aws.String("8b7e6d5"),
		SourceBundle: &types.S3Location{S3Bucket: aws.String(ebBucket), S3Key: aws.String("backend/8b7e6d5.zip")},
	})
	apiErr = wantAPIError(t, err, "InvalidParameterCombination")
	if apiErr.ErrorMessage() != "Unable to download from S3 location (Bucket: slipway-bundles  Key: backend/8b7e6d5.zip). Reason: Not Found" {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}
	_, err = c.eb.CreateApplicationVersion(ctx, &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String("frontend"), VersionLabel: aws.String("v1")})
	apiErr = wantAPIError(t, err, "InvalidParameterValue")
	if apiErr.ErrorMessage() != "No Application named 'frontend' found." {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}

	out, err := c.eb.DescribeApplicationVersions(ctx, &elasticbeanstalk.DescribeApplicationVersionsInput{ApplicationName: aws.String("backend")})
	must(t, err)
	var labels []string
	for _, v := range out.ApplicationVersions {
		labels = append(labels, aws.ToString(v.VersionLabel))
	}
	if strings.Join(labels, ",") != "3f2a9c1,v1" {
		t.Errorf("DescribeApplicationVersions labels = %q, want newest first", labels)
	}
	v := out.ApplicationVersions[0]
	if aws.ToString(v.SourceBundle.S3Key) != "backend/3f2a9c1.zip" || aws.ToString(v.Description) != "commit 3f2a9c1" ||
		v.Status != "UNPROCESSED" || v.DateCreated == nil || !strings.HasSuffix(aws.ToString(v.ApplicationVersionArn), ":applicationversion/backend/3f2a9c1") {
		t.Errorf("version = %+v", v)
	}
	one, err := c.eb.DescribeApplicationVersions(ctx, &elasticbeanstalk.DescribeApplicationVersionsInput{
		ApplicationName: aws.String("backend"), VersionLabels: []string{"v1", "nope"}})
	must(t, err)
	if len(one.ApplicationVersions) != 1 || aws.ToString(one.ApplicationVersions[0].VersionLabel) != "v1" {
		t.Errorf("DescribeApplicationVersions of v1 = %+v", one.ApplicationVersions)
	}
	if vs := fake.ApplicationVersions("backend"); len(vs) != 2 || vs[1].Label != "3f2a9c1" || vs[1].S3Bucket != ebBucket {
		t.Errorf("fake.ApplicationVersions = %+v", vs)
	}
	call := fake.CallsTo(awstest.Beanstalk, "CreateApplicationVersion")[0]
	if call.Params["SourceBundle.S3Key"] != "backend/3f2a9c1.zip" || call.Params["VersionLabel"] != "3f2a9c1" {
		t.Errorf("CreateApplicationVersion recorded with %v", call.Params)
	}
}

// TestBeanstalkDeploy deploys a version that goes Green, one that goes
// Red, and rolls back.
func TestBeanstalkDeploy(t *testing.T) {
	// The first deploy is held until Settle, so that the refusal during it
	// does not depend on the machine's speed; the others take 30ms.
	fake, c := setup(t, awstest.BeanstalkDeployTime(-1))
	ctx := ctx(t)
	envID := fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	fake.AddBeanstalkEnvironment("backend", "backend-staging", "v1")
	fake.PutObject(ebBucket, "seed", nil)
	newVersion(t, c, "backend", "3f2a9c1")
	newVersion(t, c, "backend", "8b7e6d5")
	fake.FailBeanstalkVersion("backend", "8b7e6d5", "Error: the app did not start on port 8080")

	env := describe(t, c, "backend-production")
	if env.Status != types.EnvironmentStatusReady || env.Health != types.EnvironmentHealthGreen || aws.ToString(env.VersionLabel) != "v1" ||
		aws.ToString(env.EnvironmentId) != envID || aws.ToString(env.ApplicationName) != "backend" {
		t.Fatalf("starting environment = %+v", env)
	}

	// A deploy that succeeds. (EB dates events to the millisecond, and so
	// does a StartTime: leave the millisecond of the environment's launch.)
	time.Sleep(2 * time.Millisecond)
	start := time.Now()
	up, err := c.eb.UpdateEnvironment(ctx, &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("3f2a9c1")})
	must(t, err)
	if up.Status != types.EnvironmentStatusUpdating || up.Health != types.EnvironmentHealthGrey || aws.ToString(up.VersionLabel) != "3f2a9c1" ||
		!aws.ToBool(up.AbortableOperationInProgress) {
		t.Errorf("UpdateEnvironment = %s %s %s", up.Status, up.Health, aws.ToString(up.VersionLabel))
	}
	_, err = c.eb.UpdateEnvironment(ctx, &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v1")})
	apiErr := wantAPIError(t, err, "InvalidParameterValue")
	if apiErr.ErrorMessage() != "Environment named backend-production is in an invalid state for this operation. Must be Ready." {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}
	if st := fake.BeanstalkEnvironment("backend-production"); st.Status != "Updating" || st.Health != "Grey" || st.VersionLabel != "3f2a9c1" {
		t.Errorf("during the deploy: %+v", st)
	}
	fake.Settle()
	fake.SetBeanstalkDeployTime(30 * time.Millisecond)
	env = waitReady(t, c, "backend-production")
	if env.Health != types.EnvironmentHealthGreen || env.HealthStatus != types.EnvironmentHealthStatusOk || aws.ToString(env.VersionLabel) != "3f2a9c1" {
		t.Errorf("after the deploy: %s %s %s", env.Health, env.HealthStatus, aws.ToString(env.VersionLabel))
	}
	got := messages(events(t, c, "backend-production", start))
	want := []string{
		"INFO Environment update completed successfully.",
		"INFO New application version was deployed to running EC2 instances.",
		"INFO Deploying new version to instance(s).",
		"INFO Environment update is starting.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	if staging := describe(t, c, "backend-staging"); aws.ToString(staging.VersionLabel) != "v1" {
		t.Errorf("staging changed: %+v", staging)
	}

	// A deploy that goes Red: back on the last good label.
	time.Sleep(2 * time.Millisecond)
	start = time.Now()
	_, err = c.eb.UpdateEnvironment(ctx, &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentId: aws.String(envID), VersionLabel: aws.String("8b7e6d5")})
	must(t, err)
	env = waitReady(t, c, "backend-production")
	if env.Health != types.EnvironmentHealthRed || env.HealthStatus != types.EnvironmentHealthStatusSevere || aws.ToString(env.VersionLabel) != "3f2a9c1" {
		t.Errorf("after the failed deploy: %s %s %s", env.Health, env.HealthStatus, aws.ToString(env.VersionLabel))
	}
	evs := events(t, c, "backend-production", start)
	got = messages(evs)
	want = []string{
		"WARN Environment health has transitioned from GREEN to RED.",
		"ERROR Update environment operation is complete, but with errors. For more information, see troubleshooting documentation.",
		"ERROR Failed to deploy application.",
		"ERROR Unsuccessful command execution on instance id(s) 'i-0a5e5eed0a5e5eed0'. Aborting the operation.",
		"ERROR [Instance: i-0a5e5eed0a5e5eed0] Command failed on instance. Return code: 1 Output: Error: the app did not start on port 8080.",
		"INFO Deploying new version to instance(s).",
		"INFO Environment update is starting.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	updates := fake.CallsTo(awstest.Beanstalk, "UpdateEnvironment")
	id := updates[len(updates)-1].RequestID
	byRequest, err := c.eb.DescribeEvents(ctx, &elasticbeanstalk.DescribeEventsInput{RequestId: aws.String(id)})
	must(t, err)
	if got := messages(byRequest.Events); !slices.Equal(got, want) {
		t.Errorf("events of request %s = %q, want %q", id, got, want)
	}
	errorsOnly, err := c.eb.DescribeEvents(ctx, &elasticbeanstalk.DescribeEventsInput{
		EnvironmentName: aws.String("backend-production"), Severity: types.EventSeverityError})
	must(t, err)
	if len(errorsOnly.Events) != 4 {
		t.Errorf("ERROR events = %q", messages(errorsOnly.Events))
	}

	// The rollback goes Green again.
	_, err = c.eb.UpdateEnvironment(ctx, &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v1")})
	must(t, err)
	env = waitReady(t, c, "backend-production")
	if env.Health != types.EnvironmentHealthGreen || aws.ToString(env.VersionLabel) != "v1" {
		t.Errorf("after the rollback: %s %s", env.Health, aws.ToString(env.VersionLabel))
	}
	if last := fake.BeanstalkEvents("backend-production"); last[len(last)-1].Message != "Environment health has transitioned from RED to GREEN." {
		t.Errorf("last event %+v", last[len(last)-1])
	}
	if st := fake.BeanstalkEnvironment("backend-production"); st.Status != "Ready" || st.Health != "Green" || st.VersionLabel != "v1" || st.ID != envID {
		t.Errorf("fake.BeanstalkEnvironment = %+v", st)
	}
}

func TestBeanstalkUpdateRefusals(t *testing.T) {
	fake, c := setup(t)
	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	tests := []struct {
		name    string
		in      elasticbeanstalk.UpdateEnvironmentInput
		code    string
		message string
	}{
		{"missing environment", elasticbeanstalk.UpdateEnvironmentInput{EnvironmentName: aws.String("nope"), VersionLabel: aws.String("v1")},
			"InvalidParameterValue", "No Environment found for EnvironmentName = 'nope'."},
		{"missing version", elasticbeanstalk.UpdateEnvironmentInput{EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v9")},
			"InvalidParameterValue", "No Application Version named 'v9' found."},
		{"another application", elasticbeanstalk.UpdateEnvironmentInput{ApplicationName: aws.String("frontend"), EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v1")},
			"InvalidParameterValue", "No Environment found for EnvironmentName = 'backend-production'."},
		{"no label", elasticbeanstalk.UpdateEnvironmentInput{EnvironmentName: aws.String("backend-production"), Description: aws.String("x")},
			"NotImplemented", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.eb.UpdateEnvironment(ctx(t), &tt.in)
			apiErr := wantAPIError(t, err, tt.code)
			if tt.message != "" && apiErr.ErrorMessage() != tt.message {
				t.Errorf("message %q, want %q", apiErr.ErrorMessage(), tt.message)
			}
		})
	}
	if st := fake.BeanstalkEnvironment("backend-production"); st.Status != "Ready" || st.VersionLabel != "v1" {
		t.Errorf("refused updates changed the environment: %+v", st)
	}
}

// TestBeanstalkHeldUntilSettle holds a deploy until the test settles it.
func TestBeanstalkHeldUntilSettle(t *testing.T) {
	fake, c := setup(t, awstest.BeanstalkDeployTime(-1))
	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	fake.PutObject(ebBucket, "seed", nil)
	newVersion(t, c, "backend", "v2")
	_, err := c.eb.UpdateEnvironment(ctx(t), &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v2")})
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	if env := describe(t, c, "backend-production"); env.Status != types.EnvironmentStatusUpdating {
		t.Fatalf("held deploy is %s", env.Status)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- fake.WaitFor(wctx, func() bool { return fake.BeanstalkEnvironment("backend-production").Status == "Ready" })
	}()
	fake.Settle()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if env := describe(t, c, "backend-production"); env.Health != types.EnvironmentHealthGreen || aws.ToString(env.VersionLabel) != "v2" {
		t.Errorf("settled deploy: %s %s", env.Health, aws.ToString(env.VersionLabel))
	}
}
