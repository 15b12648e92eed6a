package workflows

// What a config's maps may hold is taken from CircleCI's own JSON schema
// for config files (shared/corpus/circleci/schema.json, from
// CircleCI-Public/circleci-yaml-language-server) and from its
// configuration reference. TestKeysAgainstSchema holds the tables below
// to the schema: every key it lists is read or refused by name, and a
// key it does not list is accepted only with the source that documents
// it.

// keyRule is what slipway does with one key of a map.
type keyRule struct {
	// refused, when set, says why slipway does not run the feature the
	// key asks for: using the key is an error that says so.
	refused string
	// source, for a key that CircleCI's JSON schema does not list, is
	// where CircleCI documents it, or the evidence that CircleCI runs it.
	source string
}

// Sources of keys the schema does not list.
const (
	srcWhenAttribute = "configuration reference, \"The when attribute\": when is an attribute of every job step (store_artifacts and store_test_results always run); real orbs set it on restore_cache"
	srcDescription   = "reusing config reference, orb authoring: jobs, commands and executors have a description; real orbs set one on run steps, which the schema leaves open"
	srcSetup         = "configuration reference, \"setup\": designates a config for dynamic configuration"
	srcName          = "configuration reference, workflows, jobs: name (the schema leaves a workflow's job entry open)"
	srcPullRequests  = "configuration reference, workflows, jobs, filters: pull_requests (the schema leaves filters open)"
	srcExprFilters   = "expressions reference: job filters may be an expression"
)

// placeKeys are the keys of each kind of map, by the name the schema
// test and error messages use.
var placeKeys = map[string]map[string]keyRule{
	"config": {
		"version": {}, "jobs": {}, "workflows": {}, "orbs": {}, "commands": {}, "executors": {}, "parameters": {},
		"setup":        {source: srcSetup},
		"description":  {source: srcDescription},
		"display":      {},
		"examples":     {},
		"experimental": {}, // email notification settings of circleci.com: nothing to do here
		"job-groups":   {refused: "job groups (several jobs serialized as one unit) are not implemented; give each job its serial-group"},
	},
	"job": {
		"type": {}, "docker": {}, "machine": {}, "macos": {}, "executor": {}, "resource_class": {}, "parallelism": {},
		"environment": {}, "working_directory": {}, "shell": {}, "steps": {}, "parameters": {}, "description": {},
		// The egress addresses of circleci.com's machines, and how long
		// it keeps caches: a slipway server's jobs leave from its own
		// hosts, and its operator sets how long caches are kept.
		"circleci_ip_ranges": {}, "retention": {},
	},
	"executor": {
		"docker": {}, "machine": {}, "macos": {}, "resource_class": {}, "shell": {}, "working_directory": {},
		"environment": {}, "parameters": {}, "description": {},
		"windows": {source: "configuration reference, executors: windows", refused: "Windows executors need Windows hosts (their steps are PowerShell), which slipway cannot provide"},
	},
	"docker image": {
		"image": {}, "name": {}, "entrypoint": {}, "command": {}, "user": {}, "environment": {}, "auth": {},
		"aws_auth": {refused: "give registry credentials with auth (username, password) or in the server config"},
	},
	"machine": {
		"image": {}, "resource_class": {}, "shell": {}, "enabled": {},
		"docker_layer_caching": {}, // a machine job on the host shares the host's Docker layers anyway
	},
	"command":   {"steps": {}, "parameters": {}, "description": {}},
	"parameter": {"type": {}, "default": {}, "enum": {}, "description": {}},
	"workflow": {
		"jobs": {}, "when": {}, "unless": {}, "triggers": {},
		"max_auto_reruns": {refused: "automatic reruns of failed workflows are not implemented"},
	},
	"workflow job": {
		"requires": {}, "context": {}, "filters": {}, "type": {}, "matrix": {}, "pre-steps": {}, "post-steps": {},
		"serial-group":  {},
		"name":          {source: srcName},
		"override-with": {refused: "overriding a job with an orb's job at run time is not implemented"},
	},
	"filters":          {"branches": {}, "tags": {}, "pull_requests": {source: srcPullRequests}},
	"branch filter":    {"only": {}, "ignore": {}},
	"matrix":           {"parameters": {}, "exclude": {}, "alias": {}},
	"schedule trigger": {"schedule": {}},
	"schedule":         {"cron": {}, "filters": {}},
	"logic matches":    {"pattern": {}, "value": {}},
	"run": {
		"command": {}, "name": {}, "shell": {}, "environment": {}, "background": {}, "working_directory": {},
		"no_output_timeout": {}, "when": {},
		"description":      {source: srcDescription},
		"max_auto_reruns":  {refused: "automatic reruns of failed steps are not implemented"},
		"auto_rerun_delay": {refused: "automatic reruns of failed steps are not implemented"},
	},
	"checkout":             {"path": {}, "method": {}, "depth": {}, "when": {source: srcWhenAttribute}},
	"setup_remote_docker":  {"version": {}, "docker_layer_caching": {}, "when": {source: srcWhenAttribute}},
	"save_cache":           {"key": {}, "paths": {}, "name": {}, "when": {}},
	"restore_cache":        {"key": {}, "keys": {}, "name": {}, "when": {source: srcWhenAttribute}},
	"store_artifacts":      {"path": {}, "destination": {}, "name": {}, "when": {source: srcWhenAttribute}},
	"store_test_results":   {"path": {}, "name": {}, "when": {source: srcWhenAttribute}},
	"persist_to_workspace": {"root": {}, "paths": {}, "name": {}, "when": {source: srcWhenAttribute}},
	"attach_workspace":     {"at": {}, "name": {}, "when": {source: srcWhenAttribute}},
	"add_ssh_keys":         {"fingerprints": {}, "when": {source: srcWhenAttribute}},
	"when step":            {"condition": {}, "steps": {}},
}

// checkKeys checks the keys of the map n, of the given place, naming it
// as what in errors: a key slipway does not know, or one whose feature it
// refuses, is an error at the key. skip are keys the caller reads itself
// (a job's parameters among an invocation's keys).
func checkKeys(n *node, place, what string) error {
	rules := placeKeys[place]
	if rules == nil {
		panic("workflows: no keys for " + place)
	}
	for _, k := range n.keys {
		r, ok := rules[k.value]
		switch {
		case !ok:
			return errorf(k, "%s: unknown key %q", what, k.value)
		case r.refused != "":
			return errorf(k, "%s: %s is not supported: %s", what, k.value, r.refused)
		}
	}
	return nil
}
