package awstest_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

// waitUpdated waits with the SDK's own waiter for the function's last
// update to end, polling every few milliseconds; it answers the waiter's
// error, which a Failed update makes.
func waitUpdated(t *testing.T, c *clients, name string) error {
	t.Helper()
	w := lambda.NewFunctionUpdatedV2Waiter(c.lambda, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	return w.Wait(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 10*time.Second)
}

func getFunction(t *testing.T, c *clients, name string) *lambda.GetFunctionOutput {
	t.Helper()
	out, err := c.lambda.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String(name)})
	must(t, err)
	return out
}

// TestLambdaDeploy updates a function's image, publishes versions, moves
// an alias and rolls it back.
func TestLambdaDeploy(t *testing.T) {
	// Updates are held until Settle, so that the refusals during one do
	// not depend on the machine's speed.
	fake, c := setup(t, awstest.LambdaUpdateTime(-1))
	ctx := ctx(t)
	image1, image2 := ecrHost+"/api:3f2a9c1", ecrHost+"/api:8b7e6d5"
	arn := fake.AddFunction("api", image1)
	if arn != "arn:aws:lambda:eu-west-1:123456789012:function:api" {
		t.Errorf("AddFunction = %s", arn)
	}

	got := getFunction(t, c, "api")
	conf := got.Configuration
	if conf.State != types.StateActive || conf.LastUpdateStatus != types.LastUpdateStatusSuccessful || conf.PackageType != types.PackageTypeImage ||
		aws.ToString(conf.Version) != "$LATEST" || aws.ToString(conf.FunctionArn) != arn || aws.ToString(got.Code.ImageUri) != image1 ||
		aws.ToString(got.Code.RepositoryType) != "ECR" || !strings.HasPrefix(aws.ToString(got.Code.ResolvedImageUri), ecrHost+"/api@sha256:") {
		t.Errorf("GetFunction = %+v %+v", conf, got.Code)
	}

	// Publish version 1, point the alias live at it.
	v1, err := c.lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("api"), Description: aws.String("3f2a9c1")})
	must(t, err)
	if aws.ToString(v1.Version) != "1" || aws.ToString(v1.FunctionArn) != arn+":1" {
		t.Errorf("PublishVersion = %s %s", aws.ToString(v1.Version), aws.ToString(v1.FunctionArn))
	}
	live, err := c.lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	must(t, err)
	if aws.ToString(live.AliasArn) != arn+":live" || aws.ToString(live.FunctionVersion) != "1" {
		t.Errorf("CreateAlias = %+v", live)
	}

	// The update is InProgress, and refuses other updates meanwhile.
	up, err := c.lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(image2)})
	must(t, err)
	if up.LastUpdateStatus != types.LastUpdateStatusInProgress || up.State != types.StateActive || aws.ToString(up.RevisionId) == "" {
		t.Errorf("UpdateFunctionCode = %s %s", up.LastUpdateStatus, up.State)
	}
	_, err = c.lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(image1)})
	var conflict *types.ResourceConflictException
	if !errors.As(err, &conflict) || conflict.ErrorMessage() != "The operation cannot be performed at this time. An update is in progress for resource: "+arn {
		t.Errorf("UpdateFunctionCode during an update: %v", err)
	}
	_, err = c.lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("api")})
	if !errors.As(err, &conflict) {
		t.Errorf("PublishVersion during an update: %v", err)
	}
	if st := fake.LambdaFunction("api"); st.LastUpdateStatus != "InProgress" || st.ImageURI != image2 {
		t.Errorf("during the update: %+v", st)
	}
	fake.Settle()
	must(t, waitUpdated(t, c, "api"))
	if got := getFunction(t, c, "api"); got.Configuration.LastUpdateStatus != types.LastUpdateStatusSuccessful || aws.ToString(got.Code.ImageUri) != image2 {
		t.Errorf("after the update: %s %s", got.Configuration.LastUpdateStatus, aws.ToString(got.Code.ImageUri))
	}

	v2, err := c.lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("api")})
	must(t, err)
	again, err := c.lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("api")})
	must(t, err)
	if aws.ToString(v2.Version) != "2" || aws.ToString(again.Version) != "2" {
		t.Errorf("PublishVersion = %s, then unchanged %s; want 2 twice", aws.ToString(v2.Version), aws.ToString(again.Version))
	}
	_, err = c.lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("2")})
	must(t, err)
	alias, err := c.lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("api"), Name: aws.String("live")})
	must(t, err)
	if aws.ToString(alias.FunctionVersion) != "2" {
		t.Errorf("GetAlias = %+v", alias)
	}

	// Each version pins its code; the alias resolves to its version's.
	for _, q := range []struct{ qualifier, image string }{{"1", image1}, {"2", image2}, {"live", image2}, {"$LATEST", image2}} {
		out, err := c.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("api"), Qualifier: aws.String(q.qualifier)})
		must(t, err)
		if aws.ToString(out.Code.ImageUri) != q.image {
			t.Errorf("GetFunction(api:%s) image = %s, want %s", q.qualifier, aws.ToString(out.Code.ImageUri), q.image)
		}
	}
	byARN, err := c.lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(arn + ":1")})
	must(t, err)
	if aws.ToString(byARN.Version) != "1" || aws.ToString(byARN.Description) != "3f2a9c1" {
		t.Errorf("GetFunctionConfiguration(arn:1) = %s %q", aws.ToString(byARN.Version), aws.ToString(byARN.Description))
	}

	list, err := c.lambda.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("api")})
	must(t, err)
	var versions []string
	for _, v := range list.Versions {
		versions = append(versions, aws.ToString(v.Version))
	}
	if !slices.Equal(versions, []string{"$LATEST", "1", "2"}) {
		t.Errorf("ListVersionsByFunction = %q", versions)
	}

	// Rollback: the alias back to version 1.
	_, err = c.lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	must(t, err)
	st := fake.LambdaFunction("api")
	if st.Aliases["live"] != "1" || len(st.Versions) != 2 || st.Versions[0].ImageURI != image1 || st.Versions[1].ImageURI != image2 ||
		st.ImageURI != image2 || st.LastUpdateStatus != "Successful" {
		t.Errorf("fake.LambdaFunction = %+v", st)
	}
}

func TestLambdaFailedUpdate(t *testing.T) {
	fake, c := setup(t, awstest.LambdaUpdateTime(20*time.Millisecond))
	good, bad := ecrHost+"/api:good", ecrHost+"/api:bad"
	fake.AddFunction("api", good)
	fake.FailLambdaImage(bad, "The image manifest, config or layer media type for the source image is not supported.")
	before := getFunction(t, c, "api").Configuration.CodeSha256

	_, err := c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(bad)})
	must(t, err)
	if err := waitUpdated(t, c, "api"); err == nil {
		t.Error("the waiter took a Failed update for a success")
	}
	got := getFunction(t, c, "api")
	conf := got.Configuration
	if conf.LastUpdateStatus != types.LastUpdateStatusFailed || conf.LastUpdateStatusReasonCode != types.LastUpdateStatusReasonCodeInvalidImage ||
		aws.ToString(conf.LastUpdateStatusReason) != "The image manifest, config or layer media type for the source image is not supported." ||
		conf.State != types.StateActive {
		t.Errorf("after a failed update: %s %s %q", conf.LastUpdateStatus, conf.LastUpdateStatusReasonCode, aws.ToString(conf.LastUpdateStatusReason))
	}
	if aws.ToString(got.Code.ImageUri) != good || aws.ToString(conf.CodeSha256) != aws.ToString(before) {
		t.Errorf("after a failed update the code is %s, want %s back", aws.ToString(got.Code.ImageUri), good)
	}
	// A later update of a good image succeeds.
	_, err = c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(ecrHost + "/api:fixed")})
	must(t, err)
	must(t, waitUpdated(t, c, "api"))
}

func TestLambdaZip(t *testing.T) {
	fake, c := setup(t, awstest.LambdaUpdateTime(0))
	fake.AddZipFunction("worker", zipOf(t, "v1"))
	code := zipOf(t, "v2")
	up, err := c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("worker"), ZipFile: code})
	must(t, err)
	sum := sha256.Sum256(code)
	if aws.ToString(up.CodeSha256) != base64.StdEncoding.EncodeToString(sum[:]) || up.CodeSize != int64(len(code)) || up.PackageType != types.PackageTypeZip {
		t.Errorf("UpdateFunctionCode = %s %d %s", aws.ToString(up.CodeSha256), up.CodeSize, up.PackageType)
	}
	must(t, waitUpdated(t, c, "worker"))
	_, err = c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("worker"), ZipFile: []byte("not a zip")})
	var invalid *types.InvalidParameterValueException
	if !errors.As(err, &invalid) {
		t.Errorf("UpdateFunctionCode with a bad zip: %v", err)
	}
	_, err = c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("worker"), ImageUri: aws.String(ecrHost + "/w:1")})
	if !errors.As(err, &invalid) || !strings.Contains(invalid.ErrorMessage(), "packageType Zip") {
		t.Errorf("UpdateFunctionCode of a Zip function with an image: %v", err)
	}
	call := fake.CallsTo(awstest.Lambda, "UpdateFunctionCode")[0]
	if call.Params["FunctionName"] != "worker" || !strings.Contains(call.Params["ZipFile"].(string), "bytes") {
		t.Errorf("UpdateFunctionCode recorded with %v", call.Params)
	}
}

func zipOf(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("bootstrap")
	must(t, err)
	_, err = w.Write([]byte(content))
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

func TestLambdaRefusals(t *testing.T) {
	fake, c := setup(t)
	ctx := ctx(t)
	arn := fake.AddFunction("api", ecrHost+"/api:v1")

	_, err := c.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("nope")})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:nope" {
		t.Errorf("GetFunction of a missing function: %v", err)
	}
	_, err = c.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("api"), Qualifier: aws.String("7")})
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "Function not found: "+arn+":7" {
		t.Errorf("GetFunction of a missing version: %v", err)
	}
	_, err = c.lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("api"), Name: aws.String("live")})
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "Alias not found: "+arn+":live" {
		t.Errorf("GetAlias of a missing alias: %v", err)
	}
	_, err = c.lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("3")})
	if !errors.As(err, &notFound) {
		t.Errorf("CreateAlias to a missing version: %v", err)
	}
	_, err = c.lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("$LATEST")})
	must(t, err)
	_, err = c.lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"), FunctionVersion: aws.String("$LATEST")})
	var conflict *types.ResourceConflictException
	if !errors.As(err, &conflict) || conflict.ErrorMessage() != "Alias already exists: "+arn+":live" {
		t.Errorf("CreateAlias again: %v", err)
	}
	_, err = c.lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("api"), Name: aws.String("live"),
		FunctionVersion: aws.String("$LATEST"), RevisionId: aws.String("stale")})
	var precondition *types.PreconditionFailedException
	if !errors.As(err, &precondition) {
		t.Errorf("UpdateAlias with a stale RevisionId: %v", err)
	}
	_, err = c.lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ZipFile: zipOf(t, "x")})
	var invalid *types.InvalidParameterValueException
	if !errors.As(err, &invalid) || invalid.ErrorMessage() != "Please provide ImageUri when updating a function with packageType Image." {
		t.Errorf("UpdateFunctionCode of an Image function with a zip: %v", err)
	}
	_, err = c.lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(ecrHost + "/api:v2"), Publish: true})
	wantAPIError(t, err, "NotImplemented")
	if st := fake.LambdaFunction("api"); st.ImageURI != ecrHost+"/api:v1" || st.LastUpdateStatus != "Successful" {
		t.Errorf("refused calls changed the function: %+v", st)
	}
}

// TestLambdaImagesFromTheRegistry checks an image URI of the fake's own
// registry against what was pushed.
func TestLambdaImagesFromTheRegistry(t *testing.T) {
	fake, c := setup(t, awstest.LambdaUpdateTime(0))
	fake.RequireRegistry()
	uri := fake.AddRepository("api")
	digest := fake.PushImage("api", "3f2a9c1")
	fake.AddFunction("api", uri+":3f2a9c1")
	got := getFunction(t, c, "api")
	if aws.ToString(got.Code.ResolvedImageUri) != uri+"@"+digest || "sha256:"+aws.ToString(got.Configuration.CodeSha256) != digest {
		t.Errorf("GetFunction = resolved %s, sha %s; want %s", aws.ToString(got.Code.ResolvedImageUri), aws.ToString(got.Configuration.CodeSha256), digest)
	}
	_, err := c.lambda.UpdateFunctionCode(ctx(t), &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("api"), ImageUri: aws.String(uri + ":0000000")})
	var invalid *types.InvalidParameterValueException
	if !errors.As(err, &invalid) || invalid.ErrorMessage() != "Source image "+uri+":0000000 does not exist. Provide a valid source image." {
		t.Errorf("UpdateFunctionCode to an image never pushed: %v", err)
	}
}
