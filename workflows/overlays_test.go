package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeOrbs writes vendored orbs into a temporary folder: files by their
// path under it.
func writeOrbs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, text := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const slack3 = `version: 2.1
commands:
  approval:
    parameters:
      message: {type: string, default: A workflow is waiting}
      webhook: {type: string, default: $SLACK_WEBHOOK}
    steps:
      - run: curl -X POST "<< parameters.webhook >>" -d "<< parameters.message >>"
jobs:
  approval-notification:
    parameters:
      message: {type: string, default: A workflow is waiting}
      channel: {type: string, default: ""}
    docker: [{image: cimg/base:stable}]
    steps:
      - approval: {message: << parameters.message >>}
`

const slack41 = `version: 2.1
commands:
  notify:
    parameters:
      event: {type: enum, enum: [fail, pass, always], default: always}
      template: {type: string, default: ""}
      channel: {type: string, default: $SLACK_DEFAULT_CHANNEL}
    steps:
      - run: curl https://slack.com/api/chat.postMessage
jobs:
  on-hold:
    parameters:
      channel: {type: string, default: $SLACK_DEFAULT_CHANNEL}
    docker: [{image: cimg/base:stable}]
    steps: [notify]
`

// TestSlackVersions maps circleci/slack onto the commit's thread only for
// the versions whose meaning slipway implements, with the parameters
// the version declares; other versions run as the orb has them.
func TestSlackVersions(t *testing.T) {
	dir := writeOrbs(t, map[string]string{"circleci/slack@3.4.2.yml": slack3, "circleci/slack@4.1.0.yml": slack41})
	load := func(src string) (*Plan, error) {
		c, err := Load("c.yml", []byte(src), LoadOptions{OrbDirs: []string{dir}})
		if err != nil {
			return nil, err
		}
		return c.Plan(Trigger{Branch: "main"})
	}
	// 3.x: approval-notification is the orb's job, run as any orb's.
	p, err := load("version: 2.1\norbs:\n  slack: circleci/slack@3.4.2\nworkflows:\n  w:\n    jobs:\n      - slack/approval-notification: {message: Pending approval, channel: releases}\n")
	if err != nil {
		t.Fatal(err)
	}
	if j := p.Workflows[0].Jobs[0]; j.Type != JobBuild || j.Spec.Steps[0].Run == nil || !strings.Contains(j.Spec.Steps[0].Run.Command, "Pending approval") {
		t.Errorf("slack@3.4.2 approval-notification: %+v", j)
	}
	// 4.x: notify and on-hold are slipway's, with the version's own
	// parameters: 4.1.0 has no thread_id.
	p, err = load("version: 2.1\norbs:\n  slack: circleci/slack@4.1.0\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [{slack/notify: {event: fail, template: basic_fail_1}}]\nworkflows:\n  w:\n    jobs: [a, slack/on-hold]\n")
	if err != nil {
		t.Fatal(err)
	}
	want := &NativeStep{Orb: "slipway/slack", Command: "notify", When: WhenOnFail, Params: map[string]string{"event": "fail", "template": "basic_fail_1", "channel": ""}}
	if diff := cmp.Diff(want, p.Workflows[0].Jobs[0].Spec.Steps[0].Native); diff != "" {
		t.Errorf("slack@4.1.0 notify (-want +got):\n%s", diff)
	}
	if j := p.Workflows[0].Jobs[1]; j.Type != JobNoOp {
		t.Errorf("slack@4.1.0 on-hold is %s, want a no-op", j.Type)
	}
	_, err = load("version: 2.1\norbs:\n  slack: circleci/slack@4.1.0\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [{slack/notify: {thread_id: t1}}]\nworkflows:\n  w:\n    jobs: [a]\n")
	if want := `c.yml:7:29: command "slack/notify" has no parameter "thread_id"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
}

const continuation020 = `version: 2.1
executors:
  default:
    docker: [{image: 'cimg/base:stable'}]
commands:
  continue:
    parameters:
      configuration_path: {type: string}
      parameters: {type: string, default: "{}"}
      circleci_domain: {type: string, default: circleci.com}
    steps:
      - run: curl -X POST https://<< parameters.circleci_domain >>/api/v2/pipeline/continue
  finish:
    steps:
      - run: curl -X POST https://circleci.com/api/v2/pipeline/continue
`

// TestContinuation: circleci/continuation's continue leaves the continued
// config and parameters where the engine reads them, in setup configs
// only.
func TestContinuation(t *testing.T) {
	dir := writeOrbs(t, map[string]string{
		"circleci/continuation@0.2.0.yml": continuation020,
		"circleci/continuation@9.0.0.yml": strings.Replace(continuation020, "      circleci_domain:", "      retries: {type: integer, default: 3}\n      circleci_domain:", 1),
	})
	src := `version: 2.1
setup: true
orbs:
  continuation: circleci/continuation@0.2.0
jobs:
  generate:
    executor: continuation/default
    steps:
      - checkout
      - continuation/continue:
          parameters: params.json
          configuration_path: .circleci/main.yml
workflows:
  setup: {jobs: [generate]}
`
	c, err := Load("c.yml", []byte(src), LoadOptions{OrbDirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan(Trigger{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	steps := p.Workflows[0].Jobs[0].Spec.Steps
	if len(steps) != 3 || steps[1].Run == nil || steps[2].StoreArtifacts == nil {
		t.Fatalf("steps %+v", steps)
	}
	if got := steps[1].Run.Environment; !cmp.Equal(got, map[string]string{"CONFIG_PATH": ".circleci/main.yml", "PARAMETERS": "params.json"}) {
		t.Errorf("continue's environment %v", got)
	}
	if got := *steps[2].StoreArtifacts; got != (StoreArtifactsStep{Path: "~/.slipway/continuation", Destination: ContinuationDir}) {
		t.Errorf("continue stores %+v", got)
	}
	for name, tt := range map[string]struct{ src, want string }{
		"not a setup config":  {strings.Replace(src, "setup: true\n", "", 1), `c.yml:9:9: command "continuation/continue" continues a setup pipeline: this config has no setup: true`},
		"slipway's artifacts": {strings.Replace(src, "- checkout", "- store_artifacts: {path: x, destination: .slipway/continuation/}", 1), `c.yml:9:49: store_artifacts: destination ".slipway/continuation/" is where slipway keeps a continued config`},
		"unknown parameters":  {strings.Replace(src, "@0.2.0", "@9.0.0", 1), `c.yml:10:9: command "continuation/continue" is not supported: circleci/continuation@9.0.0's continue has parameters whose meaning slipway does not implement: retries`},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load("c.yml", []byte(tt.src), LoadOptions{OrbDirs: []string{dir}})
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}
