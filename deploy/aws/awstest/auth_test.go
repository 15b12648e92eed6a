package awstest_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// TestAuthRefusals sends one call to each service unsigned, signed with a
// key the fake does not know, with the right key and a made-up session
// token, and scoped to another region, and checks each service's refusal.
func TestAuthRefusals(t *testing.T) {
	fake := awstest.New(t)
	fake.AddFunction("api", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v1")
	fake.PutObject("bundles", "app.zip", []byte("zip"))

	calls := []struct {
		service string
		call    func(context.Context, *clients) error
	}{
		{awstest.STS, func(ctx context.Context, c *clients) error {
			_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}},
		{awstest.S3, func(ctx context.Context, c *clients) error {
			_, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bundles"), Key: aws.String("app.zip")})
			return err
		}},
		{awstest.ECR, func(ctx context.Context, c *clients) error {
			_, err := c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
			return err
		}},
		{awstest.Beanstalk, func(ctx context.Context, c *clients) error {
			_, err := c.eb.DescribeEnvironments(ctx, &elasticbeanstalk.DescribeEnvironmentsInput{})
			return err
		}},
		{awstest.Lambda, func(ctx context.Context, c *clients) error {
			_, err := c.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("api")})
			return err
		}},
	}
	signers := []struct {
		name   string
		creds  aws.CredentialsProvider
		region string
		codes  map[string]string // by service
	}{
		{"unsigned", aws.AnonymousCredentials{}, fake.Region(), map[string]string{
			awstest.STS: "MissingAuthenticationToken", awstest.S3: "AccessDenied", awstest.ECR: "MissingAuthenticationTokenException",
			awstest.Beanstalk: "MissingAuthenticationToken", awstest.Lambda: "MissingAuthenticationTokenException"}},
		{"unknown key", credentials.NewStaticCredentialsProvider("AKIAUNKNOWNKEY000000", "secret", ""), fake.Region(), map[string]string{
			awstest.STS: "InvalidClientTokenId", awstest.S3: "InvalidAccessKeyId", awstest.ECR: "UnrecognizedClientException",
			awstest.Beanstalk: "InvalidClientTokenId", awstest.Lambda: "UnrecognizedClientException"}},
		{"made-up session token", credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, "token"), fake.Region(), map[string]string{
			awstest.STS: "InvalidClientTokenId", awstest.S3: "InvalidToken", awstest.ECR: "UnrecognizedClientException",
			awstest.Beanstalk: "InvalidClientTokenId", awstest.Lambda: "UnrecognizedClientException"}},
		{"another region", fake.Credentials(), "us-west-2", map[string]string{
			awstest.STS: "SignatureDoesNotMatch", awstest.S3: "AuthorizationHeaderMalformed", awstest.ECR: "InvalidSignatureException",
			awstest.Beanstalk: "SignatureDoesNotMatch", awstest.Lambda: "InvalidSignatureException"}},
	}
	for _, s := range signers {
		c := newClients(t, fake, s.creds, s.region, 1)
		for _, call := range calls {
			t.Run(s.name+"/"+call.service, func(t *testing.T) {
				err := call.call(ctx(t), c)
				wantAPIError(t, err, s.codes[call.service])
			})
		}
	}
	for _, c := range fake.Calls() {
		if c.ErrorCode == "" {
			t.Errorf("call %s %s by %q was answered", c.Service, c.Operation, c.Principal)
		}
	}
}
