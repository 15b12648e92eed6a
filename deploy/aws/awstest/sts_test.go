package awstest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

func TestGetCallerIdentity(t *testing.T) {
	_, c := setup(t)
	out, err := c.sts.GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	must(t, err)
	if aws.ToString(out.Arn) != awstest.UserARN || aws.ToString(out.Account) != awstest.AccountID || aws.ToString(out.UserId) == "" {
		t.Errorf("GetCallerIdentity = %s %s %s", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId))
	}
}

const deployRole = "arn:aws:iam::" + awstest.AccountID + ":role/slipway-deploy"

func TestAssumeRole(t *testing.T) {
	fake, c := setup(t)
	fake.AddRole(awstest.Role{ARN: deployRole, ExternalID: "slipway"})

	// The SDK's own provider assumes the role and signs with what it got.
	provider := stscreds.NewAssumeRoleProvider(c.sts, deployRole, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "slipway-deploy-backend"
		o.ExternalID = aws.String("slipway")
	})
	assumed := newClients(t, fake, aws.NewCredentialsCache(provider), fake.Region(), 1)
	who, err := assumed.sts.GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	must(t, err)
	wantARN := "arn:aws:sts::" + awstest.AccountID + ":assumed-role/slipway-deploy/slipway-deploy-backend"
	if got := aws.ToString(who.Arn); got != wantARN {
		t.Errorf("GetCallerIdentity as the role = %s, want %s", got, wantARN)
	}
	if !strings.HasSuffix(aws.ToString(who.UserId), ":slipway-deploy-backend") {
		t.Errorf("UserId = %s, want AROA...:slipway-deploy-backend", aws.ToString(who.UserId))
	}

	roles := fake.AssumedRoles()
	if len(roles) != 1 {
		t.Fatalf("AssumedRoles = %+v, want one", roles)
	}
	r := roles[0]
	if r.RoleARN != deployRole || r.SessionName != "slipway-deploy-backend" || r.By != awstest.UserARN ||
		r.ExternalID != "slipway" || r.SessionARN != wantARN || !strings.HasPrefix(r.AccessKeyID, "ASIA") {
		t.Errorf("AssumedRole = %+v", r)
	}
	// stscreds asks for 15 minutes unless told otherwise.
	if d := r.Expiration.Sub(r.Time); d < 14*time.Minute || d > 15*time.Minute {
		t.Errorf("credentials expire after %v, want 15 minutes", d)
	}

	// A later call signed with the session's key is recorded as the role's.
	fake.AddFunction("api", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v1")
	_, err = assumed.lambda.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("api")})
	must(t, err)
	calls := fake.CallsTo(awstest.Lambda, "GetFunction")
	if len(calls) != 1 || calls[0].Principal != wantARN || calls[0].AccessKeyID != r.AccessKeyID {
		t.Errorf("GetFunction recorded as %+v, want by %s with %s", calls, wantARN, r.AccessKeyID)
	}
}

func TestAssumeRoleRefusals(t *testing.T) {
	fake, c := setup(t)
	fake.AddRole(awstest.Role{ARN: deployRole, ExternalID: "slipway"})
	fake.AddRole(awstest.Role{ARN: "arn:aws:iam::" + awstest.AccountID + ":role/open"})
	tests := []struct {
		name    string
		in      sts.AssumeRoleInput
		code    string
		message string
	}{
		{"unknown role", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/nobody"), RoleSessionName: aws.String("s1")},
			"AccessDenied", "User: " + awstest.UserARN + " is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/nobody"},
		{"external ID missing", sts.AssumeRoleInput{RoleArn: aws.String(deployRole), RoleSessionName: aws.String("s1")},
			"AccessDenied", ""},
		{"external ID wrong", sts.AssumeRoleInput{RoleArn: aws.String(deployRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String("other")},
			"AccessDenied", ""},
		{"session name with a space", sts.AssumeRoleInput{RoleArn: aws.String(deployRole), RoleSessionName: aws.String("slipway deploy"), ExternalId: aws.String("slipway")},
			"ValidationError", "1 validation error detected: Value 'slipway deploy' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"},
		{"longer than the role allows", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/open"), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7200)},
			"ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.sts.AssumeRole(ctx(t), &tt.in)
			apiErr := wantAPIError(t, err, tt.code)
			if tt.message != "" && apiErr.ErrorMessage() != tt.message {
				t.Errorf("message %q, want %q", apiErr.ErrorMessage(), tt.message)
			}
		})
	}
	if got := fake.AssumedRoles(); len(got) != 0 {
		t.Errorf("AssumedRoles = %+v after refusals only", got)
	}
}
