package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/orbregistry/registrytest"
)

// TestOrbVendor vendors a config's orbs, imports included, from a fake
// registry; the config then validates with the registry gone.
func TestOrbVendor(t *testing.T) {
	reg := registrytest.New(t, map[string]map[string]string{
		"acme/tools": {
			"5.0.0": "version: 2.1\ncommands: {hi: {steps: [{run: echo old}]}}\n",
			"5.2.0": "version: 2.1\norbs:\n  base: acme/base@1\ncommands:\n  hi: {steps: [{run: cat \\<<EOF}, base/lo]}\n",
		},
		"acme/base": {"1.0.3": "version: 2.1\ncommands: {lo: {steps: [{run: echo base}]}}\n"},
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, ".circleci", "config.yml")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "version: 2.1\norbs:\n  t: acme/tools@5\n  aws: slipway/aws@1\njobs:\n  a: {docker: [{image: x}], steps: [t/hi]}\nworkflows: {w: {jobs: [a]}}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if code := orbCommand(context.Background(), []string{"vendor", cfg, "--registry", reg.URL}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	orbs := filepath.Join(dir, ".circleci", "orbs")
	want := "acme/tools@5: 5.2.0, " + filepath.Join(orbs, "acme", "tools@5.yml") + "\n" +
		"acme/base@1: 1.0.3, " + filepath.Join(orbs, "acme", "base@1.yml") + "\n" +
		"2 orbs written to " + orbs + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	got, err := os.ReadFile(filepath.Join(orbs, "acme", "tools@5.yml"))
	if err != nil || !strings.HasSuffix(string(got), "base/lo]}\n") || !strings.HasPrefix(string(got), "# acme/tools@5 is acme/tools@5.2.0 from ") {
		t.Errorf("tools@5.yml: %q, %v", got, err)
	}
	// Offline now: validate finds every orb vendored.
	reg.SetDown(true)
	if code, stdout, stderr := runMain(t, "validate", cfg); code != 0 {
		t.Errorf("validate with the registry down: exit %d: %s%s", code, stdout, stderr)
	}
	// Vendoring again writes nothing new.
	out.Reset()
	if code := orbCommand(context.Background(), []string{"vendor", cfg, "--registry", reg.URL}, &out, &errs); code != 0 || !strings.Contains(out.String(), "0 orbs written") {
		t.Errorf("again: exit %d: %s %s", code, out.String(), errs.String())
	}
	// An orb neither vendored nor fetchable.
	if err := os.WriteFile(cfg, []byte(strings.Replace(src, "acme/tools@5", "acme/tools@6", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	if code := orbCommand(context.Background(), []string{"vendor", cfg, "--registry", reg.URL}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "orb acme/tools@6 can be neither vendored nor fetched") {
		t.Errorf("unfetchable: exit %d: %s", code, errs.String())
	}
	if code := orbCommand(context.Background(), nil, &out, &errs); code != 2 {
		t.Errorf("no subcommand: exit %d", code)
	}
}

// validate, plan and run fetch the orbs a config does not vendor from the
// registry --registry names; --offline never asks it.
func TestCommandsFetchOrbs(t *testing.T) {
	reg := registrytest.New(t, map[string]map[string]string{
		"acme/tools": {"5.2.0": "version: 2.1\ncommands: {hi: {steps: [{run: echo hi from the orb}]}}\n"},
	})
	cfg := filepath.Join(t.TempDir(), "config.yml")
	src := "version: 2.1\norbs:\n  t: acme/tools@5\njobs:\n  a: {docker: [{image: x}], steps: [t/hi]}\nworkflows: {w: {jobs: [a]}}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runMain(t, "validate", cfg, "--registry", reg.URL); code != 0 {
		t.Errorf("validate: exit %d: %s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runMain(t, "plan", cfg, "--branch", "main", "--registry", reg.URL, "--json")
	if code != 0 || !strings.Contains(stdout, `"job": "a"`) {
		t.Errorf("plan: exit %d: %s%s", code, stdout, stderr)
	}
	asked := len(reg.Queries())
	code, _, stderr = runMain(t, "validate", cfg, "--registry", reg.URL, "--offline")
	if code != 1 || !strings.Contains(stderr, "acme/tools@5") || len(reg.Queries()) != asked {
		t.Errorf("validate --offline: exit %d, %d more queries: %s", code, len(reg.Queries())-asked, stderr)
	}
}
