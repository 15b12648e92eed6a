package aws_test

import (
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/deploy/aws"
	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// Without credentials in the job's context or the server's environment,
// every command fails before calling AWS, saying where credentials go.
func TestCredentialsMissing(t *testing.T) {
	for _, s := range []step{
		{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "${CIRCLE_SHA1}"}},
		{command: "beanstalk-deploy", params: map[string]string{"application": "backend", "environment": "backend-app", "version-label": "v2", "image": "backend:v2"}},
		{command: "lambda-update", params: map[string]string{"function": "api-handler", "image-uri": "backend:v2"}},
	} {
		t.Run(s.command, func(t *testing.T) {
			h := newHarness(t, nil)
			delete(h.env, "AWS_ACCESS_KEY_ID")
			delete(h.env, "AWS_SECRET_ACCESS_KEY")
			_, _, err := h.run(ctx(t), s)
			wantErr(t, err, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the job's context")
			if c := h.fake.Calls(); len(c) != 0 {
				t.Errorf("AWS was called: %+v", c)
			}
		})
	}
}

// The job's context overrides the server's configuration piece by piece;
// what it does not say comes from the SDK's default chain.
func TestConfiguration(t *testing.T) {
	lambda := step{command: "lambda-update", params: map[string]string{"function": "api-handler", "image-uri": "backend:v2"}}
	t.Run("server credentials", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.AddFunction("api-handler", "backend:v1")
		delete(h.env, "AWS_ACCESS_KEY_ID")
		delete(h.env, "AWS_SECRET_ACCESS_KEY")
		t.Setenv("AWS_ACCESS_KEY_ID", awstest.AccessKeyID)
		t.Setenv("AWS_SECRET_ACCESS_KEY", awstest.SecretAccessKey)
		_, log, err := h.run(ctx(t), lambda)
		must(t, err)
		if !strings.Contains(log, "credentials from the server's (the SDK's default chain)") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("half a key", func(t *testing.T) {
		h := newHarness(t, nil)
		delete(h.env, "AWS_SECRET_ACCESS_KEY")
		_, _, err := h.run(ctx(t), lambda)
		wantErr(t, err, "the job's context sets AWS_ACCESS_KEY_ID but not AWS_SECRET_ACCESS_KEY")
	})
	t.Run("no region", func(t *testing.T) {
		h := newHarness(t, nil)
		delete(h.env, "AWS_REGION")
		_, _, err := h.run(ctx(t), lambda)
		wantErr(t, err, "no AWS region: set AWS_REGION in the job's context or the step's region parameter")
	})
	t.Run("region parameter", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.AddFunction("api-handler", "backend:v1")
		h.env["AWS_REGION"] = "us-west-2"
		s := lambda
		s.params = map[string]string{"function": "api-handler", "image-uri": "backend:v2", "region": h.fake.Region()}
		_, _, err := h.run(ctx(t), s)
		must(t, err)
	})
}

// AWS_ROLE_ARN in the job's context makes every call as the role,
// assumed with the context's key, its session named after the attempt.
func TestRoleAssumption(t *testing.T) {
	const role = "arn:aws:iam::" + awstest.AccountID + ":role/slipway-deploy"
	h := newHarness(t, nil)
	h.fake.AddRole(awstest.Role{ARN: role, ExternalID: "ext-7"})
	h.fake.AddFunction("api-handler", "backend:v1")
	h.env["AWS_ROLE_ARN"] = role
	lambda := step{command: "lambda-update", params: map[string]string{"function": "api-handler", "image-uri": "backend:v2"}}

	_, _, err := h.run(ctx(t), lambda)
	wantErr(t, err, "assume role "+role+": AccessDenied")
	if n := len(h.fake.CallsTo(awstest.Lambda, "")); n != 0 {
		t.Errorf("%d Lambda calls without the role", n)
	}

	h.env["AWS_ROLE_EXTERNAL_ID"] = "ext-7"
	_, log, err := h.run(ctx(t), lambda)
	must(t, err)
	assumed := h.fake.AssumedRoles()
	if len(assumed) != 1 || assumed[0].SessionName != "slipway-att-1" || assumed[0].By != awstest.UserARN {
		t.Fatalf("assumed roles %+v", assumed)
	}
	for _, c := range h.fake.CallsTo(awstest.Lambda, "") {
		if c.Principal != assumed[0].SessionARN {
			t.Errorf("%s by %s, not the role", c.Operation, c.Principal)
		}
	}
	if !strings.Contains(log, "credentials from the job's context, assuming role "+role) {
		t.Errorf("log:\n%s", log)
	}
}

func TestParametersAndCommands(t *testing.T) {
	h := newHarness(t, nil)
	_, _, err := h.run(ctx(t), step{command: "ecs-deploy"})
	wantErr(t, err, `slipway/aws has no command "ecs-deploy"`)
	_, _, err = h.run(ctx(t), step{command: "beanstalk-deploy", params: map[string]string{"application": "backend",
		"version-label": "v1", "timeout": "soon", "rollback-on-failure": "maybe", "image": "a", "bundle": "b"}})
	wantErr(t, err, "environment is required", `timeout is "soon", not a duration`, `rollback-on-failure is "maybe", not true or false`,
		"give one of image, repo and bundle")
	_, _, err = h.run(ctx(t), step{command: "ecr-push", params: map[string]string{"repo": "backend", "tag": "${CIRCLE_SHA1}", "extra-tags": "latest, -bad"}})
	wantErr(t, err, `"-bad" is not an image tag`)
	if c := h.fake.Calls(); len(c) != 0 {
		t.Errorf("AWS was called: %+v", c)
	}
	if aws.ECRKey("backend", "digest") != "ecr.backend.digest" || aws.BeanstalkKey("backend", "backend-app", "version") != "beanstalk.backend/backend-app.version" ||
		aws.LambdaKey("api-handler", "version") != "lambda.api-handler.version" {
		t.Error("the output keys changed: releases recorded before read them")
	}
}
