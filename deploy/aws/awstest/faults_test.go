package awstest_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// TestFaultShapes injects the throttling and internal errors of each
// service and checks that the SDK sees them as that service's own.
func TestFaultShapes(t *testing.T) {
	fake, c := setup(t)
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
}
