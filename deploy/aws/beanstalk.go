package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// Limits of what beanstalk-deploy uploads: Elastic Beanstalk takes source
// bundles of up to 500 MB.
const maxBundle = 500 << 20

// DefaultBeanstalkTimeout bounds a Beanstalk deploy's wait for health, and
// again its rollback's, unless the step's timeout says.
const DefaultBeanstalkTimeout = 20 * time.Minute

// beanstalkDeploy deploys an application version to an environment and
// waits until the environment is Ready and Green. The version is labelled
// with the commit (version-label) and made once: from an image (a
// Dockerrun.aws.json pointing at it) or from a source bundle of the job's
// files, uploaded to S3; a version that exists is reused. A deploy that
// turns Red or times out is rolled back to the version live before,
// unless rollback-on-failure is off, and the step fails saying so. On a
// rollback, the version the release recorded is deployed again as it is.
func (s *step) beanstalkDeploy(ctx context.Context) (engine.Outputs, error) {
	p := s.p
	app, env, label := p.required("application"), p.required("environment"), p.required("version-label")
	imageURI, repo, tag, bundle := p.str("image"), p.str("repo"), p.str("tag"), p.str("bundle")
	port := p.integer("port", 80)
	timeout := p.duration("timeout", DefaultBeanstalkTimeout)
	rollback := p.flag("rollback-on-failure", true)
	sources := 0
	for _, v := range []string{imageURI, repo, bundle} {
		if v != "" {
			sources++
		}
	}
	if sources > 1 {
		p.errs = append(p.errs, "give one of image, repo and bundle")
	}
	if len(label) > 100 {
		p.errs = append(p.errs, fmt.Sprintf("version-label %q is over Elastic Beanstalk's 100 characters", label))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	sess, err := s.session(ctx, p.str("region"))
	if err != nil {
		return nil, err
	}
	d := &ebDeploy{step: s, api: sess.beanstalk(), app: app, env: env, timeout: timeout}
	cur, err := d.describe(ctx)
	if err != nil {
		return nil, err
	}
	prev := cur.label
	s.logf("%s (application %s) is %s and %s on version %s", env, app, cur.status, cur.health, orNone(prev))

	if recorded, ok := s.restore(BeanstalkKey(app, env, "version")); ok {
		exists, err := d.versionExists(ctx, recorded)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, fmt.Errorf("rollback: version %s of %s, which the release recorded, no longer exists; nothing was deployed", recorded, app)
		}
		label = recorded
		s.logf("Rollback: deploying version %s again, recorded by the release; nothing is uploaded", label)
	} else {
		if s.rollingBack() {
			s.logf("Rollback: the release recorded no version of %s/%s; deploying version %s", app, env, label)
		}
		if err := d.ensureVersion(ctx, sess, label, versionSource{image: imageURI, repo: repo, tag: tag, bundle: bundle, port: port}); err != nil {
			return nil, err
		}
	}
	out := engine.Outputs{BeanstalkKey(app, env, "version"): label, BeanstalkKey(app, env, "previous"): prev}

	if cur.status != "Ready" {
		s.logf("Waiting for %s to be Ready before deploying (it is %s)", env, cur.status)
		if cur, err = d.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	if cur.ready() && cur.health == "Green" && cur.label == label {
		s.logf("%s is already Ready and Green on version %s: nothing to deploy", env, label)
		return out, nil
	}
	res, err := d.deploy(ctx, label)
	if err != nil {
		return nil, err
	}
	switch res.outcome {
	case healthy:
		s.logf("%s is Ready and Green on version %s", env, label)
		return out, nil
	case canceled:
		return nil, d.canceled(ctx, label, prev)
	}
	failure := res.failure(env, label, timeout)
	if !rollback || prev == "" || prev == label {
		why := "rollback-on-failure is off"
		if rollback {
			why = "there is no earlier version to roll back to"
		}
		return nil, fmt.Errorf("%s; %s, so it was left %s", failure, why, d.state(ctx))
	}
	s.logf("%s; rolling back to version %s, which was live before", failure, prev)
	if err := d.rollBack(ctx, prev); err != nil {
		return nil, fmt.Errorf("%s; the rollback to version %s failed too: %w", failure, prev, err)
	}
	return nil, fmt.Errorf("%s; rolled back to version %s, which is Ready and Green again", failure, prev)
}

// ebDeploy is a deploy to one environment.
type ebDeploy struct {
	*step
	api     *elasticbeanstalk.Client
	app     string
	env     string
	timeout time.Duration
}

// envState is what DescribeEnvironments says of an environment.
type envState struct {
	status, health, label string
}

func (e envState) ready() bool { return e.status == "Ready" }

func (e envState) String() string {
	return fmt.Sprintf("%s and %s on version %s", e.status, e.health, orNone(e.label))
}

func orNone(label string) string {
	if label == "" {
		return "(none)"
	}
	return label
}

func (d *ebDeploy) describe(ctx context.Context) (envState, error) {
	out, err := d.api.DescribeEnvironments(ctx, &elasticbeanstalk.DescribeEnvironmentsInput{
		ApplicationName: aws.String(d.app), EnvironmentNames: []string{d.env}, IncludeDeleted: aws.Bool(false),
	})
	if err != nil {
		return envState{}, fmt.Errorf("Elastic Beanstalk: describe %s: %w", d.env, err)
	}
	for _, e := range out.Environments {
		if aws.ToString(e.EnvironmentName) == d.env && e.Status != ebtypes.EnvironmentStatusTerminated {
			return envState{status: string(e.Status), health: string(e.Health), label: aws.ToString(e.VersionLabel)}, nil
		}
	}
	return envState{}, fmt.Errorf("Elastic Beanstalk has no environment %s of application %s", d.env, d.app)
}

// state describes the environment now, even after ctx ended, for the
// last words of a failure.
func (d *ebDeploy) state(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	st, err := d.describe(ctx)
	if err != nil {
		return fmt.Sprintf("in a state that could not be read (%v)", err)
	}
	return st.String()
}

func (d *ebDeploy) versionExists(ctx context.Context, label string) (bool, error) {
	out, err := d.api.DescribeApplicationVersions(ctx, &elasticbeanstalk.DescribeApplicationVersionsInput{
		ApplicationName: aws.String(d.app), VersionLabels: []string{label},
	})
	if err != nil {
		return false, fmt.Errorf("Elastic Beanstalk: describe version %s of %s: %w", label, d.app, err)
	}
	return slices.ContainsFunc(out.ApplicationVersions, func(v ebtypes.ApplicationVersionDescription) bool {
		return aws.ToString(v.VersionLabel) == label
	}), nil
}

// versionSource is where a new application version comes from.
type versionSource struct {
	image     string // an image URI
	repo, tag string // or an ECR repository's image at tag
	bundle    string // or the job's file or folder
	port      int    // the container port of an image
}

// ensureVersion makes version label of the application unless it exists:
// its source bundle uploaded to S3, then CreateApplicationVersion.
func (d *ebDeploy) ensureVersion(ctx context.Context, sess *session, label string, src versionSource) error {
	exists, err := d.versionExists(ctx, label)
	if err != nil {
		return err
	}
	if exists {
		d.logf("Version %s of %s exists: reused", label, d.app)
		return nil
	}
	var data []byte
	var what string
	switch {
	case src.bundle != "":
		if data, err = archive(ctx, d.run.Files, src.bundle, maxBundle); err != nil {
			return fmt.Errorf("source bundle: %w", err)
		}
		what = "the source bundle " + src.bundle
	case src.image != "" || src.repo != "":
		uri := src.image
		if uri == "" {
			repoURI, err := d.repository(ctx, sess.ecr(), src.repo, false)
			if err != nil {
				return err
			}
			uri = repoURI + ":" + src.tag
		}
		if data, err = dockerrun(uri, src.port); err != nil {
			return err
		}
		what = "a Dockerrun.aws.json for " + uri
	default:
		return fmt.Errorf("version %s of %s does not exist, and the step gives no image, repo or bundle to make it from", label, d.app)
	}
	bucket := d.p.str("bucket")
	if bucket == "" {
		who, err := sess.sts().GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return fmt.Errorf("STS: get caller identity (for the default bucket): %w", err)
		}
		bucket = fmt.Sprintf("elasticbeanstalk-%s-%s", sess.region, aws.ToString(who.Account))
	}
	key := d.app + "/" + label + ".zip"
	if err := upload(ctx, sess, bucket, key, data); err != nil {
		return err
	}
	d.logf("Uploaded %s (%s) to s3://%s/%s", what, size(int64(len(data))), bucket, key)
	_, err = d.api.CreateApplicationVersion(ctx, &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String(d.app), VersionLabel: aws.String(label),
		Description:  aws.String(truncate("slipway: "+what, 200)),
		SourceBundle: &ebtypes.S3Location{S3Bucket: aws.String(bucket), S3Key: aws.String(key)},
	})
	if err != nil && strings.Contains(err.Error(), "already exists") {
		// Made meanwhile by another job deploying the same commit.
		d.logf("Version %s of %s exists: reused", label, d.app)
		return nil
	}
	if err != nil {
		return fmt.Errorf("Elastic Beanstalk: create version %s of %s: %w", label, d.app, err)
	}
	d.logf("Created version %s of %s", label, d.app)
	return nil
}

// dockerrun is a source bundle that runs image: a Dockerrun.aws.json of
// version 1, which Beanstalk's Docker platforms take.
func dockerrun(image string, port int) ([]byte, error) {
	doc, err := json.MarshalIndent(map[string]any{
		"AWSEBDockerrunVersion": "1",
		"Image":                 map[string]string{"Name": image, "Update": "true"},
		"Ports":                 []map[string]int{{"ContainerPort": port}},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return zipOf(map[string][]byte{"Dockerrun.aws.json": append(doc, '\n')})
}

// upload puts data at bucket/key, making the bucket when it does not
// exist. The body is seekable, so that the SDK signs and retries it.
func upload(ctx context.Context, sess *session, bucket, key string, data []byte) error {
	api := sess.s3()
	put := func() error {
		_, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(data), ContentType: aws.String("application/zip")})
		return err
	}
	err := put()
	var noBucket *s3types.NoSuchBucket
	if errors.As(err, &noBucket) || apiCode(err) == "NoSuchBucket" {
		in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
		if sess.region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(sess.region)}
		}
		if _, cerr := api.CreateBucket(ctx, in); cerr != nil && apiCode(cerr) != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("S3: create bucket %s: %w", bucket, cerr)
		}
		err = put()
	}
	if err != nil {
		return fmt.Errorf("S3: put s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// The ways a wait ends.
const (
	healthy   = "healthy"   // Ready and Green on the label
	unhealthy = "unhealthy" // Ready, but Red or back on another label
	timedOut  = "timed out"
	canceled  = "canceled"
)

// waitResult is how a wait ended, and the environment then.
type waitResult struct {
	outcome string
	state   envState
	errors  []string // the ERROR events of the deploy, oldest first
}

// failure says, in words, how a deploy of label that did not become
// healthy ended.
func (w waitResult) failure(env, label string, timeout time.Duration) string {
	if w.outcome == timedOut {
		return fmt.Sprintf("%s was not Ready and Green on version %s after %s (it is %s)", env, label, timeout, w.state)
	}
	msg := fmt.Sprintf("%s turned Red deploying version %s (it is %s)", env, label, w.state)
	if w.state.health != "Red" {
		// Elastic Beanstalk put the last good version back.
		msg = fmt.Sprintf("%s failed to deploy version %s (it is %s)", env, label, w.state)
	}
	if len(w.errors) > 0 {
		msg += ": " + strings.TrimSuffix(w.errors[0], ".")
	}
	return msg
}

// deploy starts the deploy of label and waits for its end.
func (d *ebDeploy) deploy(ctx context.Context, label string) (waitResult, error) {
	started := time.Now()
	out, err := d.api.UpdateEnvironment(ctx, &elasticbeanstalk.UpdateEnvironmentInput{
		ApplicationName: aws.String(d.app), EnvironmentName: aws.String(d.env), VersionLabel: aws.String(label),
	})
	if err != nil {
		return waitResult{}, fmt.Errorf("Elastic Beanstalk: update %s to version %s: %w", d.env, label, err)
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	d.logf("Deploying version %s to %s (it is %s); waiting up to %s for Ready and Green", label, d.env, out.Status, d.timeout)
	return d.wait(ctx, label, reqID, started)
}

// wait polls the environment until the deploy of label is healthy or
// not, the timeout passes or ctx ends, streaming the deploy's events to
// the job's log: those of request reqID, or since started.
func (d *ebDeploy) wait(ctx context.Context, label, reqID string, started time.Time) (waitResult, error) {
	deadline := time.Now().Add(d.timeout)
	events := &eventStream{d: d, requestID: reqID, since: started.Add(-time.Second), seen: map[string]bool{}}
	tick := time.NewTicker(d.r.poll)
	defer tick.Stop()
	res := waitResult{}
	for {
		st, err := d.describe(ctx)
		switch {
		case ctx.Err() != nil:
			res.outcome = canceled
		case err != nil:
			return res, err
		case st.ready() && st.health == "Green" && st.label == label:
			res.outcome = healthy
		case st.ready() && (st.health == "Red" || st.label != label):
			res.outcome = unhealthy
		case !time.Now().Before(deadline):
			res.outcome = timedOut
		}
		res.state = st
		events.poll(ctx)
		if res.outcome != "" {
			res.errors = events.errors
			return res, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// waitReady waits, within the timeout, for the environment to take
// updates again.
func (d *ebDeploy) waitReady(ctx context.Context) (envState, error) {
	deadline := time.Now().Add(d.timeout)
	tick := time.NewTicker(d.r.poll)
	defer tick.Stop()
	for {
		st, err := d.describe(ctx)
		if err != nil {
			return st, err
		}
		if st.ready() {
			return st, nil
		}
		if !time.Now().Before(deadline) {
			return st, fmt.Errorf("%s was still %s after %s", d.env, st, d.timeout)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return st, fmt.Errorf("canceled while waiting for %s to be Ready; it was %s: %w", d.env, st, ctx.Err())
		}
	}
}

// rollBack deploys prev again, once the environment takes updates.
func (d *ebDeploy) rollBack(ctx context.Context, prev string) error {
	st, err := d.waitReady(ctx)
	if err != nil {
		return err
	}
	if st.health == "Green" && st.label == prev {
		return nil
	}
	res, err := d.deploy(ctx, prev)
	switch {
	case err != nil:
		return err
	case res.outcome == healthy:
		return nil
	case res.outcome == canceled:
		return d.canceled(ctx, prev, "")
	}
	return errors.New(res.failure(d.env, prev, d.timeout))
}

// canceled is the error of a deploy of label canceled mid-wait, with the
// state it left the environment in: Elastic Beanstalk goes on with a
// deploy once started.
func (d *ebDeploy) canceled(ctx context.Context, label, prev string) error {
	msg := fmt.Sprintf("canceled while %s was deploying version %s; Elastic Beanstalk goes on with the deploy, and the environment was left %s",
		d.env, label, d.state(ctx))
	if prev != "" && prev != label {
		msg += fmt.Sprintf("; version %s was live before", prev)
	}
	d.logf("%s", msg)
	return fmt.Errorf("%s: %w", msg, ctx.Err())
}

// eventStream writes an environment's new events to the job's log.
type eventStream struct {
	d         *ebDeploy
	requestID string
	since     time.Time
	seen      map[string]bool
	errors    []string
	failed    bool // reading the events failed once: said, not repeated
}

func (e *eventStream) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	in := &elasticbeanstalk.DescribeEventsInput{ApplicationName: aws.String(e.d.app), EnvironmentName: aws.String(e.d.env)}
	if e.requestID != "" {
		in.RequestId = aws.String(e.requestID)
	} else {
		in.StartTime = aws.Time(e.since)
	}
	out, err := e.d.api.DescribeEvents(ctx, in)
	if err != nil {
		if !e.failed {
			e.d.logf("(the environment's events could not be read: %v)", err)
			e.failed = true
		}
		return
	}
	for _, ev := range slices.Backward(out.Events) { // oldest first
		at := aws.ToTime(ev.EventDate)
		key := at.String() + string(ev.Severity) + aws.ToString(ev.Message)
		if e.seen[key] {
			continue
		}
		e.seen[key] = true
		e.d.logf("  %s %-5s %s", at.UTC().Format(time.TimeOnly), ev.Severity, aws.ToString(ev.Message))
		if ev.Severity == ebtypes.EventSeverityError || ev.Severity == ebtypes.EventSeverityFatal {
			e.errors = append(e.errors, aws.ToString(ev.Message))
		}
	}
}
