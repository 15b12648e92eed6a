package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/elasticbeanstalk"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// session is the AWS configuration of one step, and its clients.
type session struct {
	cfg    aws.Config
	region string
}

// session configures AWS for the step: the SDK's defaults, then the job's
// context variables, then region (the step's parameter) when set. It
// fetches the credentials up front, so that missing ones or a role that
// cannot be assumed fail the step before anything changes, in words.
func (s *step) session(ctx context.Context, region string) (*session, error) {
	opts := append([]func(*config.LoadOptions) error(nil), s.r.load...)
	if region == "" {
		region = s.env("AWS_REGION")
	}
	if region == "" {
		region = s.env("AWS_DEFAULT_REGION")
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if u := s.env("AWS_ENDPOINT_URL"); u != "" {
		opts = append(opts, config.WithBaseEndpoint(u))
	}
	from := "the server's (the SDK's default chain)"
	id, secret := s.env("AWS_ACCESS_KEY_ID"), s.env("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, s.env("AWS_SESSION_TOKEN"))))
		from = "the job's context"
	case id != "":
		return nil, errors.New("the job's context sets AWS_ACCESS_KEY_ID but not AWS_SECRET_ACCESS_KEY")
	case secret != "":
		return nil, errors.New("the job's context sets AWS_SECRET_ACCESS_KEY but not AWS_ACCESS_KEY_ID")
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION in the job's context or the step's region parameter")
	}
	if role := s.env("AWS_ROLE_ARN"); role != "" {
		base := cfg.Credentials
		if base == nil {
			return nil, fmt.Errorf("no AWS credentials to assume role %s with", role)
		}
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = s.sessionName()
			if ext := s.env("AWS_ROLE_EXTERNAL_ID"); ext != "" {
				o.ExternalID = aws.String(ext)
			}
		}))
		from += ", assuming role " + role
	}
	if cfg.Credentials == nil {
		return nil, noCredentials(nil)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if role := s.env("AWS_ROLE_ARN"); role != "" {
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) {
				return nil, fmt.Errorf("assume role %s: %s: %s", role, apiErr.ErrorCode(), apiErr.ErrorMessage())
			}
		}
		return nil, noCredentials(err)
	}
	s.logf("AWS: region %s, credentials from %s", cfg.Region, from)
	return &session{cfg: cfg, region: cfg.Region}, nil
}

// noCredentials says that no credentials were found, and where they go.
func noCredentials(cause error) error {
	msg := "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the job's context (an environment of the app), " +
		"or give slipway's server credentials the standard way (environment, shared config, instance role)"
	if cause != nil {
		return fmt.Errorf("%s (%w)", msg, cause)
	}
	return errors.New(msg)
}

// sessionName names the role session after the attempt, within STS's
// 64 characters of [\w+=,.@-].
func (s *step) sessionName() string {
	id := ""
	if s.run.Job != nil {
		id = s.run.Job.ID
	}
	name := "slipway-" + strings.Map(func(r rune) rune {
		if r == '_' || r == '+' || r == '=' || r == ',' || r == '.' || r == '@' || r == '-' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '-'
	}, id)
	return name[:min(len(name), 64)]
}

func (ss *session) ecr() *ecr.Client { return ecr.NewFromConfig(ss.cfg) }

func (ss *session) beanstalk() *elasticbeanstalk.Client {
	return elasticbeanstalk.NewFromConfig(ss.cfg)
}

func (ss *session) lambda() *lambda.Client { return lambda.NewFromConfig(ss.cfg) }

func (ss *session) sts() *sts.Client { return sts.NewFromConfig(ss.cfg) }

// s3 addresses buckets in the path when the endpoint is not AWS's own,
// as S3-compatible stores want.
func (ss *session) s3() *s3.Client {
	return s3.NewFromConfig(ss.cfg, func(o *s3.Options) {
		if ss.cfg.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
}

// apiCode is the AWS error code of err, "" when it is none.
func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
