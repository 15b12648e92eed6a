package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

// slipway run deploys only when told --deploy, with AWS configured the
// standard way, from the environment: here, the fake's.
func TestRunDeploy(t *testing.T) {
	fake := awstest.New(t)
	const image = awstest.AccountID + ".dkr.ecr.eu-west-1.amazonaws.com/backend"
	fake.AddFunction("api-handler", image+":v1")
	dir := t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
		}
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": fake.Endpoint(), "AWS_REGION": fake.Region(),
		"AWS_ACCESS_KEY_ID": awstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awstest.SecretAccessKey,
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(`version: 2.1
orbs:
  aws: slipway/aws@1
jobs:
  ship:
    machine: true
    steps:
      - aws/lambda-update:
          function: api-handler
          image-uri: `+image+`:v2
workflows:
  deploy:
    jobs: [ship]
`), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runMain(t, "run", cfg, "--repo", dir, "--branch", "main", "--allow-machine", "--logs")
	if code != 0 || !strings.Contains(out, "slipway/aws lambda-update (dry run: slipway run does not deploy)") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
	}
	if n := len(fake.Calls()); n != 0 {
		t.Errorf("a dry run called AWS %d times", n)
	}

	code, out, errs = runMain(t, "run", cfg, "--repo", dir, "--branch", "main", "--allow-machine", "--logs", "--deploy")
	if code != 0 {
		t.Fatalf("--deploy: exit %d\n%s\n%s", code, out, errs)
	}
	if fn := fake.LambdaFunction("api-handler"); fn.Aliases["live"] != "1" || fn.ImageURI != image+":v2" {
		t.Errorf("after --deploy: %+v", fn)
	}
	if !strings.Contains(out, "api-handler: alias live made, pointing at version 1") {
		t.Errorf("the job's log lacks the alias:\n%s", out)
	}
}
