package workflows

import (
	"fmt"
	"slices"
	"strings"
)

// Some commands and jobs of CircleCI's own orbs do what slipway does
// itself: circleci/slack posts to Slack, which slipway does in the
// commit's thread; circleci/continuation calls CircleCI's API to
// continue a setup pipeline, which slipway's engine does. For the
// versions whose meaning slipway implements, these elements are
// overlaid on the orb's own source, keeping the parameters that version
// declares, so that an argument a version lacks is refused as CircleCI
// refuses it. The orb's other elements run as any orb's do.

// overlayElement is an orb's command or job that slipway carries out.
type overlayElement struct {
	// orb and command name the native step a command becomes; a job
	// overlaid becomes a no-op job.
	orb, command string
	// refused, when set, says why the element cannot be carried out.
	refused string
}

// slackMajors are the major versions of circleci/slack whose notify and
// on-hold slipway implements: notify posts a message (template or
// custom blocks) for an event (pass, fail, always) to a channel, which
// slipway posts into the commit's thread; on-hold announces an approval,
// which slipway announces itself. Version 3's commands post to a
// webhook and are run as the orb has them.
var slackMajors = []string{"4", "5"}

// continuationParams are the parameters of circleci/continuation's
// continue command whose meaning slipway implements; circleci_domain
// says where CircleCI's API is, and slipway is that API.
var continuationParams = []string{"configuration_path", "parameters", "circleci_domain", "when", "files_changed", "parameter_for_files_changed"}

// Where a continue step leaves the config and parameters it continues
// with: under an attempt's artifacts, for the engine to read once the
// job ended. The destination is slipway's own: no other step may store
// artifacts there.
const (
	ContinuationDir            = ".slipway/continuation"
	ContinuationConfig         = "config.yml"
	ContinuationConfigPath     = "config-path"
	ContinuationParameters     = "parameters.json"
	ContinuationFilesParameter = "files-changed-parameter"
	ContinuationFiles          = "files-changed"
)

// overlay applies slipway's elements to an orb's scope. version is the
// exact version when known, else the reference.
func overlay(sc *scope, name, version string) {
	major, _, _ := strings.Cut(version, ".")
	switch name {
	case "circleci/slack":
		if !slices.Contains(slackMajors, major) {
			return
		}
		sc.overlays = map[string]*overlayElement{}
		if sc.commands["notify"] != nil {
			sc.overlays["commands/notify"] = &overlayElement{orb: "slipway/slack", command: "notify"}
		}
		if sc.jobs["on-hold"] != nil {
			sc.overlays["jobs/on-hold"] = &overlayElement{}
		}
	case "circleci/continuation":
		sc.continuation = true
		for _, cmd := range []string{"continue", "finish"} {
			def := sc.commands[cmd]
			if def == nil || def.kind != mapNode {
				continue
			}
			var extra []string
			if ps := def.get("parameters"); ps != nil {
				for _, k := range ps.keys {
					if !slices.Contains(continuationParams, k.value) {
						extra = append(extra, k.value)
					}
				}
			}
			if len(extra) > 0 {
				if sc.overlays == nil {
					sc.overlays = map[string]*overlayElement{}
				}
				sc.overlays["commands/"+cmd] = &overlayElement{refused: fmt.Sprintf("%s@%s's %s has parameters whose meaning slipway does not implement: %s",
					name, version, cmd, strings.Join(extra, ", "))}
				continue
			}
			sc.commands[cmd] = continuationCommand(cmd, def)
		}
	}
}

// continuationCommand is slipway's continue (or finish) with the
// parameters that the orb's version declares: a run step that leaves
// the config and parameters under ContinuationDir, and a store_artifacts
// step that keeps them for the engine.
func continuationCommand(cmd string, def *node) *node {
	params := def.get("parameters")
	declared := func(p string) bool { return params.get(p) != nil }
	at := def
	str := func(s string) *node { return scalar(s, at) }
	m := func(kv ...any) *node {
		n := &node{kind: mapNode, file: at.file, line: at.line, col: at.col}
		for i := 0; i < len(kv); i += 2 {
			n.keys = append(n.keys, str(kv[i].(string)))
			v, ok := kv[i+1].(*node)
			if !ok {
				v = str(kv[i+1].(string))
			}
			n.vals = append(n.vals, v)
		}
		return n
	}
	if cmd == "finish" {
		run := m("run", m("name", "Finish the pipeline", "command", "echo 'continuation/finish: this pipeline ends with its setup workflow; nothing is continued'"))
		return m("parameters", orNull(params), "steps", &node{kind: seqNode, items: []*node{run}, file: at.file, line: at.line, col: at.col})
	}
	env := m("CONFIG_PATH", "<< parameters.configuration_path >>")
	if declared("parameters") {
		env.keys = append(env.keys, str("PARAMETERS"))
		env.vals = append(env.vals, str("<< parameters.parameters >>"))
	}
	if declared("files_changed") && declared("parameter_for_files_changed") {
		env.keys = append(env.keys, str("FILES_CHANGED"), str("PARAMETER_FOR_FILES_CHANGED"))
		env.vals = append(env.vals, str("<< parameters.files_changed >>"), str("<< parameters.parameter_for_files_changed >>"))
	}
	run := m("name", "Continue the pipeline", "environment", env, "command", continueScript)
	if declared("when") {
		run.keys = append(run.keys, str("when"))
		run.vals = append(run.vals, str("<< parameters.when >>"))
	}
	store := m("store_artifacts", m("path", "~/"+ContinuationDir, "destination", ContinuationDir))
	steps := &node{kind: seqNode, items: []*node{m("run", run), store}, file: at.file, line: at.line, col: at.col}
	return m("parameters", orNull(params), "steps", steps)
}

func orNull(n *node) *node {
	if n == nil {
		return &node{kind: scalarNode, tag: "!!null"}
	}
	return n
}

// continueScript leaves the continued config and its parameters (a JSON
// object, or a file holding one) where the next step stores them. The
// folder appears whole or not at all.
const continueScript = `set -eu
out="$HOME/` + ContinuationDir + `"
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
if [ ! -f "$CONFIG_PATH" ]; then
  echo "continuation: there is no config at $CONFIG_PATH" >&2
  exit 1
fi
cp "$CONFIG_PATH" "$out.tmp/` + ContinuationConfig + `"
printf '%s' "$CONFIG_PATH" > "$out.tmp/` + ContinuationConfigPath + `"
PARAMETERS="${PARAMETERS:-{\}}"
if [ -f "$PARAMETERS" ]; then
  cp "$PARAMETERS" "$out.tmp/` + ContinuationParameters + `"
else
  printf '%s' "$PARAMETERS" > "$out.tmp/` + ContinuationParameters + `"
fi
if [ -n "${PARAMETER_FOR_FILES_CHANGED:-}" ] && [ -f "${FILES_CHANGED:-}" ]; then
  printf '%s' "$PARAMETER_FOR_FILES_CHANGED" > "$out.tmp/` + ContinuationFilesParameter + `"
  cp "$FILES_CHANGED" "$out.tmp/` + ContinuationFiles + `"
fi
mv "$out.tmp" "$out"
echo "Continuing with $CONFIG_PATH: slipway starts the continued pipeline when this job ends."
`
