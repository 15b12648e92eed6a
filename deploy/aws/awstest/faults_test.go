package awstest_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// TestFaultShapes injects the throttling and internal errors of each
// service and checks that the SDK sees them as that service's own.
func TestFaultShapes(t *testing.T) {
	fake, c := setup(t)
	fake.AddFunction("api", ecrHost+"/api:v1")
	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	fake.PutObject("bundles", "app.zip", []byte("zip"))
	calls := map[string]func() error{
		awstest.STS: func() error {
			_, err := c.sts.GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
			return err
		},
		awstest.S3: func() error {
			_, err := c.s3.PutObject(ctx(t), &s3.PutObjectInput{Bucket: aws.String("bundles"), Key: aws.String("k"), Body: bytes.NewReader(nil)})
			return err
		},
		awstest.ECR: func() error {
			_, err := c.ecr.DescribeRepositories(ctx(t), &ecr.DescribeRepositoriesInput{})
			return err
		},
		awstest.Beanstalk: func() error {
			_, err := c.eb.DescribeEnvironments(ctx(t), &elasticbeanstalk.DescribeEnvironmentsInput{})
			return err
		},
		awstest.Lambda: func() error {
			_, err := c.lambda.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("api")})
			return err
		},
	}
	tests := []struct {
		service, fault, code string
		status               int
	}{
		{awstest.STS, awstest.Throttling, "Throttling", 400},
		{awstest.STS, awstest.InternalError, "InternalFailure", 500},
		{awstest.S3, awstest.Throttling, "SlowDown", 503},
		{awstest.S3, awstest.InternalError, "InternalError", 500},
		{awstest.ECR, awstest.Throttling, "ThrottlingException", 400},
		{awstest.ECR, awstest.InternalError, "ServerException", 500},
		{awstest.Beanstalk, awstest.Throttling, "Throttling", 400},
		{awstest.Beanstalk, awstest.InternalError, "InternalFailure", 500},
		{awstest.Lambda, awstest.Throttling, "TooManyRequestsException", 429},
		{awstest.Lambda, awstest.InternalError, "ServiceException", 500},
	}
	for _, tt := range tests {
		t.Run(tt.service+"/"+tt.code, func(t *testing.T) {
			fake.Inject(awstest.Fault{Service: tt.service, Code: tt.fault, Calls: 1})
			err := calls[tt.service]()
			wantAPIError(t, err, tt.code)
			var re *awshttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != tt.status {
				t.Errorf("status %v, want %d", err, tt.status)
			}
			if err := calls[tt.service](); err != nil {
				t.Errorf("the call after the fault: %v", err)
			}
		})
	}
	var tooMany *lambdatypes.TooManyRequestsException
	fake.Inject(awstest.Fault{Service: awstest.Lambda, Operation: "GetFunction", Code: awstest.Throttling, Calls: 1})
	if err := calls[awstest.Lambda](); !errors.As(err, &tooMany) || aws.ToString(tooMany.RetryAfterSeconds) != "1" || tooMany.Reason != lambdatypes.ThrottleReasonCallerRateLimitExceeded {
		t.Errorf("Lambda's throttling: %v", err)
	}
}

// TestFaultsRetried checks that the SDK's retryer gets through a fault
// that lasts for fewer calls than its attempts, and that every attempt is
// recorded, the faulted ones changing nothing.
func TestFaultsRetried(t *testing.T) {
	fake := awstest.New(t)
	c := newClients(t, fake, fake.Credentials(), fake.Region(), 3)
	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	fake.PutObject("bundles", "app.zip", []byte("zip"))
	_, err := c.eb.CreateApplicationVersion(ctx(t), &elasticbeanstalk.CreateApplicationVersionInput{
		ApplicationName: aws.String("backend"), VersionLabel: aws.String("v2")})
	must(t, err)

	fake.Inject(awstest.Fault{Service: awstest.Beanstalk, Operation: "UpdateEnvironment", Code: awstest.InternalError, Status: http.StatusServiceUnavailable, Calls: 2})
	_, err = c.eb.UpdateEnvironment(ctx(t), &elasticbeanstalk.UpdateEnvironmentInput{
		EnvironmentName: aws.String("backend-production"), VersionLabel: aws.String("v2")})
	must(t, err)
	calls := fake.CallsTo(awstest.Beanstalk, "UpdateEnvironment")
	if len(calls) != 3 || calls[0].Status != 503 || calls[1].ErrorCode != "InternalFailure" || calls[2].ErrorCode != "" {
		t.Errorf("UpdateEnvironment calls = %+v", calls)
	}
	if n := len(fake.BeanstalkEvents("backend-production")); n != 3 {
		t.Errorf("%d events: the faulted calls were carried out", n)
	}

	// A fault of a given code, not retried, until cleared.
	fake.Inject(awstest.Fault{Service: awstest.ECR, Code: "AccessDeniedException", Message: "User is not authorized to perform: ecr:DescribeRepositories", Status: 400})
	for range 2 {
		_, err = c.ecr.DescribeRepositories(ctx(t), &ecr.DescribeRepositoriesInput{})
		apiErr := wantAPIError(t, err, "AccessDeniedException")
		if apiErr.ErrorMessage() != "User is not authorized to perform: ecr:DescribeRepositories" {
			t.Errorf("message %q", apiErr.ErrorMessage())
		}
	}
	fake.ClearFaults()
	_, err = c.ecr.DescribeRepositories(ctx(t), &ecr.DescribeRepositoriesInput{})
	must(t, err)
}

func TestNotModeled(t *testing.T) {
	fake, c := setup(t)
	_, err := c.ecr.ListImages(ctx(t), &ecr.ListImagesInput{RepositoryName: aws.String("x")})
	apiErr := wantAPIError(t, err, "NotImplemented")
	if apiErr.ErrorMessage() != "awstest: ecr ListImages is not modeled by the fake" {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}
	_, err = c.lambda.ListFunctions(ctx(t), &lambda.ListFunctionsInput{})
	wantAPIError(t, err, "NotImplemented")
	_, err = c.eb.DescribeApplications(ctx(t), &elasticbeanstalk.DescribeApplicationsInput{})
	wantAPIError(t, err, "NotImplemented")
	_, err = c.s3.ListBuckets(ctx(t), &s3.ListBucketsInput{})
	wantAPIError(t, err, "NotImplemented")
	if n := len(fake.Calls()); n != 4 {
		t.Errorf("%d calls recorded, want 4", n)
	}
}
