package executors

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// DefaultNoOutputTimeout is how long a run step may stay silent before it
// is killed, when it does not say otherwise (CircleCI's default).
const DefaultNoOutputTimeout = 10 * time.Minute

// DefaultShell is the shell CircleCI uses for run steps that set none:
// bash with -eo pipefail where the image or host has /bin/bash, sh with
// the same options otherwise. The executor finds out whether bash exists
// (on the host, or in the container) and the rule stays here. The sh
// form is CircleCI's documented fallback, kept as is even though some
// shells (Debian's dash) refuse -o pipefail: a job on such a host fails
// with the shell's own message and can set `shell:`.
func DefaultShell(hasBash bool) string {
	if hasBash {
		return "/bin/bash -eo pipefail"
	}
	return "/bin/sh -eo pipefail"
}

// ShellArgv is the command line of a run step: the shell's words followed
// by the path of a file holding the command. A file rather than -c keeps
// CircleCI's behaviour for shells that are not sh-like (`shell:
// python3`), and keeps the command out of the process list.
func ShellArgv(shell, scriptPath string) []string {
	return append(strings.Fields(shell), scriptPath)
}

// StepShell picks the shell of a run step: the step's, then the job's,
// then def (DefaultShell's answer for this host or image).
func StepShell(spec *workflows.JobSpec, run *workflows.RunStep, def string) string {
	switch {
	case run.Shell != "":
		return run.Shell
	case spec.Shell != "":
		return spec.Shell
	}
	return def
}

// MergeEnv merges environment layers; later layers win. A nil layer is
// skipped.
func MergeEnv(layers ...map[string]string) map[string]string {
	env := map[string]string{}
	for _, l := range layers {
		maps.Copy(env, l)
	}
	return env
}

// StepEnv is the environment of a step in CircleCI's order of precedence:
// the engine's variables (CIRCLE_*, CI, contexts) are overridden by the
// primary image's `environment` (a docker job's container has it), which
// is overridden by the job's `environment`, and that by the step's. base
// holds what the executor itself provides (HOME, PATH) and loses to all
// of them.
func StepEnv(base map[string]string, job *engine.JobRun, step map[string]string) map[string]string {
	var imageEnv, specEnv map[string]string
	if spec := job.Spec; spec != nil {
		if len(spec.Docker) > 0 {
			imageEnv = spec.Docker[0].Environment
		}
		specEnv = spec.Environment
	}
	return MergeEnv(base, job.Env, imageEnv, specEnv, step)
}

// EnvList turns env into KEY=VALUE strings sorted by key, so that a
// process sees the same environment order on every run.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// StepWhen is the effective `when` of a step. store_artifacts and
// store_test_results run whatever happened before them, so that a failed
// job still keeps its reports; steps without a `when` run on success.
func StepWhen(s workflows.Step) string {
	var w string
	switch {
	case s.Run != nil:
		w = s.Run.When
	case s.Checkout != nil:
		w = s.Checkout.When
	case s.SaveCache != nil:
		w = s.SaveCache.When
	case s.RestoreCache != nil:
		w = s.RestoreCache.When
	case s.PersistToWorkspace != nil:
		w = s.PersistToWorkspace.When
	case s.AttachWorkspace != nil:
		w = s.AttachWorkspace.When
	case s.SetupRemoteDocker != nil:
		w = s.SetupRemoteDocker.When
	case s.AddSSHKeys != nil:
		w = s.AddSSHKeys.When
	case s.Native != nil:
		w = s.Native.When
	case s.StoreArtifacts != nil, s.StoreTestResults != nil:
		w = workflows.WhenAlways
	}
	if w == "" {
		w = workflows.WhenOnSuccess
	}
	return w
}

// ShouldRun says whether a step with this `when` runs, given whether an
// earlier step of the job failed.
func ShouldRun(when string, failed bool) bool {
	switch when {
	case workflows.WhenAlways:
		return true
	case workflows.WhenOnFail:
		return failed
	default:
		return !failed
	}
}

// StepName is the name a step shows in results and logs, as CircleCI
// names them: a run step's name or else its command's first line.
func StepName(s workflows.Step) string {
	switch {
	case s.Run != nil:
		if s.Run.Name != "" {
			return s.Run.Name
		}
		first, _, _ := strings.Cut(strings.TrimSpace(s.Run.Command), "\n")
		return first
	case s.Checkout != nil:
		return "Checkout code"
	case s.SaveCache != nil:
		return nameOr(s.SaveCache.Name, "Saving cache")
	case s.RestoreCache != nil:
		return nameOr(s.RestoreCache.Name, "Restoring cache")
	case s.PersistToWorkspace != nil:
		return "Persisting to workspace"
	case s.AttachWorkspace != nil:
		return "Attaching workspace"
	case s.StoreArtifacts != nil:
		return "Uploading artifacts"
	case s.StoreTestResults != nil:
		return "Uploading test results"
	case s.SetupRemoteDocker != nil:
		return "Setup a remote Docker engine"
	case s.AddSSHKeys != nil:
		return "Add SSH keys"
	case s.Native != nil:
		return s.Native.Orb + " " + s.Native.Command
	}
	return "unknown step"
}

func nameOr(name, def string) string {
	if name != "" {
		return name
	}
	return def
}
