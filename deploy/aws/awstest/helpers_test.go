package awstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// clients are the SDK's own clients of every service, pointed at a fake.
type clients struct {
	cfg    aws.Config
	sts    *sts.Client
	s3     *s3.Client
	ecr    *ecr.Client
	eb     *elasticbeanstalk.Client
	lambda *lambda.Client
}

// setup starts a fake and the SDK's clients of it, configured as a program
// would be: LoadDefaultConfig with the fake's region, static credentials
// and endpoint, and no shared config files. The clients make one attempt
// per call unless a test asks for retries.
func setup(t *testing.T, opts ...awstest.Option) (*awstest.Fake, *clients) {
	t.Helper()
	fake := awstest.New(t, opts...)
	return fake, newClients(t, fake, fake.Credentials(), fake.Region(), 1)
}

// newClients makes clients of fake that sign with creds in region and
// make up to attempts attempts per call, without waiting between them.
func newClients(t *testing.T, fake *awstest.Fake, creds aws.CredentialsProvider, region string, attempts int) *clients {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(region),
		config.WithCredentialsProvider(creds),
		config.WithBaseEndpoint(fake.Endpoint()),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return &clients{
		cfg:    cfg,
		sts:    sts.NewFromConfig(cfg),
		s3:     s3.NewFromConfig(cfg),
		ecr:    ecr.NewFromConfig(cfg),
		eb:     elasticbeanstalk.NewFromConfig(cfg),
		lambda: lambda.NewFromConfig(cfg),
	}
}

// ctx is a test's context with a deadline well inside go test's.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantAPIError fails t unless err is an AWS error with code, and returns
// it.
func wantAPIError(t *testing.T, err error, code string) smithy.APIError {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v: want the AWS error %s", err, code)
	}
	if apiErr.ErrorCode() != code {
		t.Fatalf("error code %s (%v): want %s", apiErr.ErrorCode(), err, code)
	}
	return apiErr
}

// must fails t if err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
