package workflows

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// schemaPlaces says where in CircleCI's JSON schema each kind of map of
// placeKeys is described: one or more JSON pointers whose properties
// together are the keys CircleCI allows there.
var schemaPlaces = map[string][]string{
	"config":               {""},
	"job":                  {"/definitions/jobInvocation/oneOf/1/else/else/else/then"},
	"executor":             {"/properties/executors/additionalProperties/oneOf/0"},
	"docker image":         {"/properties/executors/additionalProperties/oneOf/0/properties/docker/items"},
	"machine":              {"/properties/executors/additionalProperties/oneOf/0/properties/machine/oneOf/1"},
	"command":              {"/properties/commands/additionalProperties/oneOf/0"},
	"parameter":            {"/properties/commands/additionalProperties/oneOf/0/properties/parameters/additionalProperties", "/properties/parameters/additionalProperties"},
	"workflow":             {"/properties/workflows/additionalProperties"},
	"workflow job":         {"/definitions/workflowJobInvocation/oneOf/1/additionalProperties"},
	"filters":              {"/definitions/workflowJobInvocation/oneOf/1/additionalProperties/properties/filters/oneOf/0"},
	"branch filter":        {"/definitions/workflowJobInvocation/oneOf/1/additionalProperties/properties/filters/oneOf/0/properties/branches", "/definitions/workflowJobInvocation/oneOf/1/additionalProperties/properties/filters/oneOf/0/properties/tags"},
	"matrix":               {"/definitions/workflowJobInvocation/oneOf/1/additionalProperties/properties/matrix"},
	"schedule trigger":     {"/properties/workflows/additionalProperties/properties/triggers/items"},
	"schedule":             {"/properties/workflows/additionalProperties/properties/triggers/items/properties/schedule"},
	"logic matches":        {"/definitions/logic/oneOf/1/properties/matches"},
	"run":                  {"/definitions/step/oneOf/1/properties/run/oneOf/1"},
	"checkout":             {"/definitions/step/oneOf/1/properties/checkout/oneOf/1"},
	"setup_remote_docker":  {"/definitions/step/oneOf/1/properties/setup_remote_docker/oneOf/1"},
	"save_cache":           {"/definitions/step/oneOf/1/properties/save_cache"},
	"restore_cache":        {"/definitions/step/oneOf/1/properties/restore_cache/oneOf/0", "/definitions/step/oneOf/1/properties/restore_cache/oneOf/1"},
	"store_artifacts":      {"/definitions/step/oneOf/1/properties/store_artifacts"},
	"store_test_results":   {"/definitions/step/oneOf/1/properties/store_test_results"},
	"persist_to_workspace": {"/definitions/step/oneOf/1/properties/persist_to_workspace"},
	"attach_workspace":     {"/definitions/step/oneOf/1/properties/attach_workspace"},
	"add_ssh_keys":         {"/definitions/step/oneOf/1/properties/add_ssh_keys/oneOf/1"},
	"when step":            {"/definitions/step/oneOf/2/properties/when", "/definitions/step/oneOf/2/properties/unless"},
}

// TestKeysAgainstSchema holds slipway's checks of a config's keys to
// CircleCI's JSON schema: each key the schema allows in a map slipway
// reads or refuses by name (never "unknown"), and each key slipway
// accepts beyond the schema says where CircleCI documents it. Every
// built-in step of the schema has its table.
func TestKeysAgainstSchema(t *testing.T) {
	src, err := os.ReadFile("../../shared/corpus/circleci/schema.json")
	if err != nil {
		t.Skipf("no schema: %v", err)
	}
	var schema any
	if err := json.Unmarshal(src, &schema); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(placeKeys)), slices.Sorted(maps.Keys(schemaPlaces))); diff != "" {
		t.Errorf("places without a schema pointer, or pointers without a place (-placeKeys +schemaPlaces):\n%s", diff)
	}
	steps := pointer(t, schema, "/definitions/step/oneOf/1/properties").(map[string]any)
	for step := range steps {
		if placeKeys[step] == nil {
			t.Errorf("the schema's step %q has no table of keys", step)
		}
	}
	for place, ptrs := range schemaPlaces {
		allowed := map[string]bool{}
		for _, p := range ptrs {
			props, _ := pointer(t, schema, p).(map[string]any)["properties"].(map[string]any)
			if props == nil {
				t.Fatalf("%s: no properties at %s", place, p)
			}
			for k := range props {
				allowed[k] = true
			}
		}
		rules := placeKeys[place]
		for k := range allowed {
			r, ok := rules[k]
			switch {
			case !ok:
				t.Errorf("%s: the schema allows %q, which slipway calls unknown", place, k)
			case r.source != "":
				t.Errorf("%s: %q is in the schema, yet cites %q", place, k, r.source)
			}
		}
		for k, r := range rules {
			if !allowed[k] && r.source == "" {
				t.Errorf("%s: slipway accepts %q, which the schema does not list, and cites nothing for it", place, k)
			}
		}
	}
}

// pointer follows a JSON pointer.
func pointer(t *testing.T, v any, p string) any {
	t.Helper()
	if p == "" {
		return v
	}
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i >= len(x) {
				t.Fatalf("bad pointer %s at %s", p, part)
			}
			v = x[i]
		default:
			t.Fatalf("bad pointer %s at %s", p, part)
		}
	}
	return v
}

// TestKeysCircleCIRuns: configs that CircleCI runs and that earlier
// checks refused.
func TestKeysCircleCIRuns(t *testing.T) {
	src := `version: 2.1
jobs:
  a:
    docker: [{image: x}]
    steps:
      - run: {command: make, description: builds it}
      - restore_cache: {keys: [v1], when: always}
      - persist_to_workspace: {root: ., paths: [a], when: on_fail}
      - checkout: {method: blobless, when: always}
workflows: {w: {jobs: [a]}}
`
	c, err := Load("c.yml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan(Trigger{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	steps := p.Workflows[0].Jobs[0].Spec.Steps
	if got := []string{steps[1].RestoreCache.When, steps[2].PersistToWorkspace.When, steps[3].Checkout.When}; !cmp.Equal(got, []string{"always", "on_fail", "always"}) {
		t.Errorf("whens %q", got)
	}
}

// TestMachineExecutor reads machine's nested resource_class and shell,
// and refuses Windows images as clearly as macOS.
func TestMachineExecutor(t *testing.T) {
	job := func(machine string) string {
		return "version: 2.1\njobs:\n  a:\n    machine: " + machine + "\n    steps: [checkout]\nworkflows: {w: {jobs: [a]}}\n"
	}
	c, err := Load("c.yml", []byte(job("{image: ubuntu-2204:current, resource_class: large, shell: /bin/zsh}")), LoadOptions{AllowMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan(Trigger{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Workflows[0].Jobs[0].Spec
	if s.ResourceClass != "large" || s.Shell != "/bin/zsh" || s.Machine.Image != "ubuntu-2204:current" {
		t.Errorf("machine job: resource_class %q, shell %q, machine %+v", s.ResourceClass, s.Shell, s.Machine)
	}
	// The job's own keys win over the machine's.
	src := "version: 2.1\njobs:\n  a:\n    machine: {image: ubuntu-2204:current, resource_class: large}\n    resource_class: medium\n    steps: [checkout]\nworkflows: {w: {jobs: [a]}}\n"
	if c, err = Load("c.yml", []byte(src), LoadOptions{AllowMachine: true}); err != nil {
		t.Fatal(err)
	}
	if p, err = c.Plan(Trigger{Branch: "main"}); err != nil || p.Workflows[0].Jobs[0].Spec.ResourceClass != "medium" {
		t.Errorf("the job's resource_class: %v, %+v", err, p)
	}
	for name, tt := range map[string]struct{ src, want string }{
		"windows image": {job("{image: 'windows-server-2022-gui:current', shell: powershell.exe}"), `c.yml:4:14: job "a" uses the Windows machine image "windows-server-2022-gui:current", which slipway cannot provide`},
		"windows executor": {"version: 2.1\nexecutors:\n  win:\n    windows: {}\njobs:\n  a:\n    executor: win\n    steps: [checkout]\nworkflows: {w: {jobs: [a]}}\n",
			`c.yml:4:5: executor "win": windows is not supported: Windows executors need Windows hosts`},
		"unknown machine key": {job("{image: x, cpus: 4}"), `c.yml:4:25: job "a": machine: unknown key "cpus"`},
	} {
		t.Run(name, func(t *testing.T) {
			// Windows is refused whether or not machine jobs are enabled.
			for _, allow := range []bool{false, true} {
				c, err := Load("c.yml", []byte(tt.src), LoadOptions{AllowMachine: allow})
				if err == nil {
					err = c.Validate()
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("allow machine %v: got %v, want %s", allow, err, tt.want)
				}
			}
		})
	}
}
