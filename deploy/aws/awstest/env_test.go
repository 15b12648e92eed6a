package awstest_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// TestStandardEnvironment configures the SDK as slipway is configured in
// production, from the standard environment variables alone, with
// AWS_ENDPOINT_URL pointing every service at the fake. S3 addresses the
// bucket in the path without being told to: the endpoint is an IP address.
func TestStandardEnvironment(t *testing.T) {
	fake := awstest.New(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            fake.Endpoint(),
		"AWS_REGION":                  fake.Region(),
		"AWS_ACCESS_KEY_ID":           awstest.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       awstest.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	must(t, err)
	ctx := ctx(t)

	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	must(t, err)
	if aws.ToString(who.Arn) != awstest.UserARN {
		t.Errorf("GetCallerIdentity = %s", aws.ToString(who.Arn))
	}
	_, err = ecr.NewFromConfig(cfg).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("backend")})
	must(t, err)
	s3c := s3.NewFromConfig(cfg)
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("slipway-bundles"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(fake.Region())}})
	must(t, err)
	_, err = s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("a/b.zip"), Body: bytes.NewReader([]byte("zip"))})
	must(t, err)
	if got, ok := fake.Object("slipway-bundles", "a/b.zip"); !ok || string(got) != "zip" {
		t.Errorf("object = %q, %v", got, ok)
	}
	for _, c := range fake.Calls() {
		if c.ErrorCode != "" || c.Principal != awstest.UserARN {
			t.Errorf("call %+v", c)
		}
	}
}
