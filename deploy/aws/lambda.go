package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// maxZip is what UpdateFunctionCode takes in its request: a zip of up to
// 50 MB.
const maxZip = 50 << 20

// DefaultLambdaTimeout bounds the wait for each function's update unless
// the step's timeout says.
const DefaultLambdaTimeout = 5 * time.Minute

// DefaultAlias is the alias lambda-update moves unless told another.
const DefaultAlias = "live"

// lambdaUpdate points functions at new code: for each, UpdateFunctionCode,
// a wait until its LastUpdateStatus is Successful (another update in
// progress is waited for: ResourceConflictException), and PublishVersion;
// then, once every function has its version, the alias of each moves to
// it. A failed update publishes nothing and moves no alias. On a
// rollback, each alias moves back to the version the release recorded,
// and nothing is updated or published.
func (s *step) lambdaUpdate(ctx context.Context) (engine.Outputs, error) {
	p := s.p
	fns := p.list("function")
	if len(fns) == 0 {
		p.errs = append(p.errs, "function is required")
	}
	imageURI, repo, tag, zipPath := p.str("image-uri"), p.str("repo"), p.str("tag"), p.str("zip-file")
	alias := p.str("alias")
	if alias == "" {
		alias = DefaultAlias
	}
	timeout := p.duration("timeout", DefaultLambdaTimeout)
	sources := 0
	for _, v := range []string{imageURI, repo, zipPath} {
		if v != "" {
			sources++
		}
	}
	if sources > 1 {
		p.errs = append(p.errs, "give one of image-uri, repo and zip-file")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	sess, err := s.session(ctx, p.str("region"))
	if err != nil {
		return nil, err
	}
	l := &lambdaDeploy{step: s, api: sess.lambda(), alias: alias, timeout: timeout}

	// The code, found once for all the functions that need it.
	var code *lambdaCode
	codeFor := func() (*lambdaCode, error) {
		if code != nil {
			return code, nil
		}
		c := &lambdaCode{}
		switch {
		case zipPath != "":
			data, err := archive(ctx, s.run.Files, zipPath, maxZip)
			if err != nil {
				return nil, fmt.Errorf("zip-file: %w", err)
			}
			c.zip, c.what = data, fmt.Sprintf("%s (%s)", zipPath, size(int64(len(data))))
		case imageURI != "":
			c.image, c.what = imageURI, imageURI
		case repo != "":
			uri, err := s.repository(ctx, sess.ecr(), repo, false)
			if err != nil {
				return nil, err
			}
			c.image = uri + ":" + tag
			c.what = c.image
		default:
			return nil, errors.New("give image-uri, repo or zip-file: the code to update the functions to")
		}
		code = c
		return c, nil
	}

	versions := make([]string, len(fns))
	for i, fn := range fns {
		if v, ok := s.restore(LambdaKey(fn, "version")); ok {
			if _, err := l.api.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn), Qualifier: aws.String(v)}); err != nil {
				return nil, fmt.Errorf("rollback: version %s of %s, which the release recorded: %w; no alias was moved", v, fn, lambdaErr(err))
			}
			s.logf("Rollback: %s's alias %s goes back to version %s, recorded by the release; nothing is updated or published", fn, alias, v)
			versions[i] = v
			continue
		}
		if s.rollingBack() {
			s.logf("Rollback: the release recorded no version of %s; updating it", fn)
		}
		c, err := codeFor()
		if err != nil {
			return nil, err
		}
		v, err := l.update(ctx, fn, c)
		if err != nil {
			return nil, err
		}
		versions[i] = v
	}
	out := engine.Outputs{}
	for i, fn := range fns {
		prev, err := l.moveAlias(ctx, fn, versions[i])
		if err != nil {
			moved := ""
			if i > 0 {
				moved = fmt.Sprintf(" (the aliases of %s were moved)", strings.Join(fns[:i], ", "))
			}
			return nil, fmt.Errorf("%w%s", err, moved)
		}
		out[LambdaKey(fn, "version")] = versions[i]
		out[LambdaKey(fn, "previous")] = prev
	}
	return out, nil
}

// lambdaCode is what functions are updated to: an image, or a zip.
type lambdaCode struct {
	image string
	zip   []byte
	what  string // for people
}

// lambdaDeploy is an update of functions.
type lambdaDeploy struct {
	*step
	api     *lambda.Client
	alias   string
	timeout time.Duration
}

// update updates fn's code to c, waits for the update to succeed and
// publishes a version of it, which it returns.
func (l *lambdaDeploy) update(ctx context.Context, fn string, c *lambdaCode) (string, error) {
	deadline := time.Now().Add(l.timeout)
	cfg, err := l.api.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)})
	if err != nil {
		return "", fmt.Errorf("Lambda: %s: %w", fn, lambdaErr(err))
	}
	switch {
	case c.image != "" && cfg.PackageType != ltypes.PackageTypeImage:
		return "", fmt.Errorf("%s is a %s function: give it zip-file, not an image", fn, cfg.PackageType)
	case c.zip != nil && cfg.PackageType == ltypes.PackageTypeImage:
		return "", fmt.Errorf("%s is an Image function: give it image-uri or repo, not zip-file", fn)
	}
	in := &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(fn)}
	if c.image != "" {
		in.ImageUri = aws.String(c.image)
	} else {
		in.ZipFile = c.zip
	}
	var upd *lambda.UpdateFunctionCodeOutput
	for {
		if cfg.LastUpdateStatus == ltypes.LastUpdateStatusInProgress {
			l.logf("%s is being updated by someone else: waiting for that update to end", fn)
			if cfg, err = l.waitUpdated(ctx, fn, deadline, c, ""); err != nil {
				return "", err
			}
		}
		upd, err = l.api.UpdateFunctionCode(ctx, in)
		var conflict *ltypes.ResourceConflictException
		if errors.As(err, &conflict) {
			l.logf("%s refused the update (ResourceConflictException: %s); trying again once its update ends", fn, conflict.ErrorMessage())
			if err := l.sleep(ctx, deadline, fn, c, ""); err != nil {
				return "", err
			}
			if cfg, err = l.api.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)}); err != nil {
				return "", fmt.Errorf("Lambda: %s: %w", fn, lambdaErr(err))
			}
			continue
		}
		if err != nil {
			return "", fmt.Errorf("Lambda: update %s to %s: %w", fn, c.what, lambdaErr(err))
		}
		break
	}
	l.logf("Updating %s to %s; waiting up to %s for it", fn, c.what, l.timeout)
	cfg, err = l.waitUpdated(ctx, fn, deadline, c, aws.ToString(upd.CodeSha256))
	if err != nil {
		return "", err
	}
	if cfg.LastUpdateStatus == ltypes.LastUpdateStatusFailed {
		return "", fmt.Errorf("the update of %s to %s failed: %s (%s); nothing was published and no alias was moved",
			fn, c.what, aws.ToString(cfg.LastUpdateStatusReason), cfg.LastUpdateStatusReasonCode)
	}
	desc := "slipway: " + c.what
	if sha := l.env("CIRCLE_SHA1"); sha != "" {
		desc += " at " + sha
	}
	for {
		pub, err := l.api.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn),
			CodeSha256: upd.CodeSha256, Description: aws.String(truncate(desc, 256))})
		var conflict *ltypes.ResourceConflictException
		if errors.As(err, &conflict) {
			if err := l.sleep(ctx, deadline, fn, c, ""); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", fmt.Errorf("Lambda: publish %s: %w; no alias was moved", fn, lambdaErr(err))
		}
		v := aws.ToString(pub.Version)
		l.logf("%s: version %s published", fn, v)
		return v, nil
	}
}

// waitUpdated polls fn until its last update is no longer InProgress.
// It fails when the deadline passes or ctx ends, saying what was left.
func (l *lambdaDeploy) waitUpdated(ctx context.Context, fn string, deadline time.Time, c *lambdaCode, sha string) (*lambda.GetFunctionConfigurationOutput, error) {
	for {
		cfg, err := l.api.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)})
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("Lambda: %s: %w", fn, lambdaErr(err))
		}
		if err == nil && cfg.LastUpdateStatus != ltypes.LastUpdateStatusInProgress {
			return cfg, nil
		}
		if err := l.sleep(ctx, deadline, fn, c, sha); err != nil {
			return nil, err
		}
	}
}

// sleep waits a poll's time, or fails when the deadline passed or ctx
// ended, saying that nothing was published and where the alias stands.
func (l *lambdaDeploy) sleep(ctx context.Context, deadline time.Time, fn string, c *lambdaCode, sha string) error {
	if !time.Now().Before(deadline) {
		return fmt.Errorf("%s was still being updated after %s; nothing was published and %s", fn, l.timeout, l.aliasState(ctx, fn))
	}
	t := time.NewTimer(min(l.r.poll, time.Until(deadline)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
	}
	what := "waiting to update " + fn
	if sha != "" {
		what = fmt.Sprintf("%s was being updated to %s (Lambda goes on with that update, so $LATEST may end on the new code)", fn, c.what)
	}
	msg := fmt.Sprintf("canceled while %s; nothing was published and %s", what, l.aliasState(ctx, fn))
	l.logf("%s", msg)
	return fmt.Errorf("%s: %w", msg, ctx.Err())
}

// aliasState says where fn's alias points, read even after ctx ended.
func (l *lambdaDeploy) aliasState(ctx context.Context, fn string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	a, err := l.api.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String(fn), Name: aws.String(l.alias)})
	var missing *ltypes.ResourceNotFoundException
	switch {
	case errors.As(err, &missing):
		return fmt.Sprintf("%s has no alias %s yet", fn, l.alias)
	case err != nil:
		return fmt.Sprintf("the alias %s of %s could not be read (%v)", l.alias, fn, err)
	}
	return fmt.Sprintf("the alias %s of %s still points at version %s", l.alias, fn, aws.ToString(a.FunctionVersion))
}

// moveAlias points fn's alias at version, making the alias if needed,
// and returns the version it pointed at before ("" when it was made).
func (l *lambdaDeploy) moveAlias(ctx context.Context, fn, version string) (string, error) {
	a, err := l.api.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String(fn), Name: aws.String(l.alias)})
	var missing *ltypes.ResourceNotFoundException
	switch {
	case errors.As(err, &missing):
		if _, err := l.api.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String(fn), Name: aws.String(l.alias),
			FunctionVersion: aws.String(version)}); err != nil {
			return "", fmt.Errorf("Lambda: create alias %s of %s: %w", l.alias, fn, lambdaErr(err))
		}
		l.logf("%s: alias %s made, pointing at version %s", fn, l.alias, version)
		return "", nil
	case err != nil:
		return "", fmt.Errorf("Lambda: alias %s of %s: %w", l.alias, fn, lambdaErr(err))
	}
	prev := aws.ToString(a.FunctionVersion)
	if prev == version {
		l.logf("%s: alias %s already points at version %s", fn, l.alias, version)
		return prev, nil
	}
	if _, err := l.api.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String(fn), Name: aws.String(l.alias),
		FunctionVersion: aws.String(version), RevisionId: a.RevisionId}); err != nil {
		return "", fmt.Errorf("Lambda: move alias %s of %s to version %s: %w", l.alias, fn, version, lambdaErr(err))
	}
	l.logf("%s: alias %s moved from version %s to %s", fn, l.alias, prev, version)
	return prev, nil
}

// lambdaErr says a function that is not there in words.
func lambdaErr(err error) error {
	var missing *ltypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		return fmt.Errorf("not found (%s)", missing.ErrorMessage())
	}
	return err
}
