package bot

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-ci/slipway/internal/lazyre"
)

// Command is one request typed in a chat, parsed.
type Command struct {
	// Verb is what is asked: "deploy", "rollback", "help", "status",
	// "history", "lock", "unlock", "cancel", "rerun".
	Verb string
	App  string
	Env  string
	// Ref is what /deploy ships: a branch, tag or SHA; "" for the
	// default branch's head.
	Ref string
	// Target is what /rollback goes back to: a short or full SHA, or a
	// deployment number ("#12" or "12"); "" for the last good one before
	// the current.
	Target string
	// Pipeline is the app's pipeline number (cancel, rerun).
	Pipeline int
	// Job is a job's name (rerun); "" for the whole pipeline.
	Job string
	// Reason says why (lock); may be empty.
	Reason string
}

// Usage is the chat's help, one line per command.
const Usage = "`/deploy <app>[@<ref>] [to] <env>` deploys a branch, tag or commit (default: the default branch's head)\n" +
	"`/rollback <app> [in] <env> [to <sha|#deployment>]` goes back to the last good deploy, or the one named\n" +
	"`/slipway help` shows this\n" +
	"`/slipway status [app]` shows what runs and what is live\n" +
	"`/slipway history <app> <env>` lists an environment's deploys\n" +
	"`/slipway lock <app> <env> [reason]` holds deploys there; `/slipway unlock <app> <env>` lets them go\n" +
	"`/slipway cancel [app] <pipeline>` stops a pipeline; `/slipway rerun [app] <pipeline> [job]` runs it (or a job) again"

// ParseError is text that is not a command: what is wrong, and how the
// command is written.
type ParseError struct {
	Msg   string
	Usage string
}

func (e *ParseError) Error() string { return e.Msg }

// maxCommand bounds what is parsed: Slack's own limit for a command's
// text is 4,000 characters; nothing slipway accepts is longer than this.
const maxCommand = 1000

var (
	appName   = lazyre.New(`^[a-z0-9][a-z0-9-]{0,62}$`)
	envName   = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	jobName   = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	shaPrefix = lazyre.New(`^[0-9a-f]{7,40}$`)
	number    = lazyre.New(`^#?[1-9][0-9]{0,8}$`)
)

const (
	deployUsage   = "`/deploy <app>[@<ref>] [to] <env>`, for example `/deploy backend@v1.4.2 to staging` or `/deploy backend production`"
	rollbackUsage = "`/rollback <app> [in] <env> [to <sha|#deployment>]`, for example `/rollback backend production` or `/rollback backend production to 3f2a9c1`"
)

// Parse reads a slash command ("/deploy", "/rollback", "/slipway") and
// its text. It is total: any text is a Command or a *ParseError that
// says what is wrong and shows the usage. What it lets through is
// checked against strict patterns, so that nothing typed can name a
// path, an option or anything but an app, an environment, a ref or a
// number.
func Parse(command, text string) (Command, error) {
	if len(text) > maxCommand {
		return Command{}, &ParseError{Msg: fmt.Sprintf("That is %d characters long; slipway's commands are shorter than %d.", len(text), maxCommand), Usage: Usage}
	}
	if !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) && !unicode.IsSpace(r) }) {
		return Command{}, &ParseError{Msg: "That text has characters slipway cannot read.", Usage: Usage}
	}
	words := strings.Fields(text)
	switch strings.ToLower(strings.TrimPrefix(command, "/")) {
	case "deploy":
		return parseDeploy(words)
	case "rollback":
		return parseRollback(words)
	case "slipway":
		return parseSlipway(words, text)
	}
	return Command{}, &ParseError{Msg: fmt.Sprintf("slipway does not know the command %q.", command), Usage: Usage}
}

func usageErr(usage, format string, args ...any) error {
	return &ParseError{Msg: fmt.Sprintf(format, args...), Usage: usage}
}

// checkApp and checkEnv say what is wrong with a name, if anything.
func checkApp(usage, s string) error {
	if !appName.MatchString(s) {
		return usageErr(usage, "%q is not an app name (lowercase letters, digits and dashes).", clip(s))
	}
	return nil
}

func checkEnv(usage, s string) error {
	if !envName.MatchString(s) {
		return usageErr(usage, "%q is not an environment name.", clip(s))
	}
	return nil
}

// refChars are the characters of the refs slipway accepts: those of
// ordinary branch and tag names. Git allows more (';', '$', backquotes);
// none of that is worth letting in from a chat.
var refChars = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$`)

// checkRef accepts ordinary branch and tag names and SHAs, as git
// check-ref-format would, in refChars.
func checkRef(usage, s string) error {
	if !refChars.MatchString(s) || strings.HasSuffix(s, "/") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "..") || strings.Contains(s, "//") || strings.Contains(s, "/.") {
		return usageErr(usage, "%q is not a branch, tag or commit.", clip(s))
	}
	return nil
}

// clip keeps what is quoted back short.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func parseDeploy(w []string) (Command, error) {
	if len(w) == 3 && strings.EqualFold(w[1], "to") {
		w = []string{w[0], w[2]}
	}
	if len(w) != 2 {
		return Command{}, usageErr(deployUsage, "/deploy needs an app and an environment.")
	}
	c := Command{Verb: "deploy", Env: w[1]}
	c.App, c.Ref, _ = strings.Cut(w[0], "@")
	if err := checkApp(deployUsage, c.App); err != nil {
		return Command{}, err
	}
	if strings.Contains(w[0], "@") {
		if err := checkRef(deployUsage, c.Ref); err != nil {
			return Command{}, err
		}
	}
	if err := checkEnv(deployUsage, c.Env); err != nil {
		return Command{}, err
	}
	return c, nil
}

func parseRollback(w []string) (Command, error) {
	if len(w) >= 3 && strings.EqualFold(w[1], "in") {
		w = append(w[:1:1], w[2:]...)
	}
	c := Command{Verb: "rollback"}
	switch {
	case len(w) == 2:
	case len(w) == 4 && strings.EqualFold(w[2], "to"):
		c.Target = strings.TrimPrefix(strings.ToLower(w[3]), "#")
		if !shaPrefix.MatchString(c.Target) && !number.MatchString(c.Target) {
			return Command{}, usageErr(rollbackUsage, "%q is neither a commit (7 to 40 hex digits) nor a deployment number.", clip(w[3]))
		}
	default:
		return Command{}, usageErr(rollbackUsage, "/rollback needs an app and an environment, and optionally `to` what.")
	}
	c.App, c.Env = w[0], w[1]
	if strings.Contains(c.App, "@") {
		return Command{}, usageErr(rollbackUsage, "/rollback goes back to a deploy: name it with `to <sha|#deployment>`, not with @.")
	}
	if err := checkApp(rollbackUsage, c.App); err != nil {
		return Command{}, err
	}
	if err := checkEnv(rollbackUsage, c.Env); err != nil {
		return Command{}, err
	}
	return c, nil
}

func parseSlipway(w []string, text string) (Command, error) {
	if len(w) == 0 {
		return Command{Verb: "help"}, nil
	}
	verb := strings.ToLower(w[0])
	args := w[1:]
	one := func(usage string) error {
		return usageErr(usage, "That is not how `/slipway %s` is written.", verb)
	}
	switch verb {
	case "help":
		return Command{Verb: "help"}, nil
	case "status":
		u := "`/slipway status [app]`"
		if len(args) > 1 {
			return Command{}, one(u)
		}
		c := Command{Verb: "status"}
		if len(args) == 1 {
			c.App = args[0]
			if err := checkApp(u, c.App); err != nil {
				return Command{}, err
			}
		}
		return c, nil
	case "history", "unlock":
		u := fmt.Sprintf("`/slipway %s <app> <env>`", verb)
		if len(args) != 2 {
			return Command{}, one(u)
		}
		c := Command{Verb: verb, App: args[0], Env: args[1]}
		if err := checkApp(u, c.App); err != nil {
			return Command{}, err
		}
		return c, checkEnv(u, c.Env)
	case "lock":
		u := "`/slipway lock <app> <env> [reason]`"
		if len(args) < 2 {
			return Command{}, one(u)
		}
		c := Command{Verb: "lock", App: args[0], Env: args[1]}
		if err := checkApp(u, c.App); err != nil {
			return Command{}, err
		}
		if err := checkEnv(u, c.Env); err != nil {
			return Command{}, err
		}
		c.Reason = strings.Join(args[2:], " ")
		if utf8.RuneCountInString(c.Reason) > 200 {
			return Command{}, usageErr(u, "A lock's reason is at most 200 characters.")
		}
		return c, nil
	case "cancel", "rerun":
		u := fmt.Sprintf("`/slipway %s [app] <pipeline>`", verb)
		if verb == "rerun" {
			u = "`/slipway rerun [app] <pipeline> [job]`"
		}
		c := Command{Verb: verb}
		if len(args) > 0 && !number.MatchString(args[0]) {
			c.App, args = args[0], args[1:]
			if err := checkApp(u, c.App); err != nil {
				return Command{}, err
			}
		}
		max := 1
		if verb == "rerun" {
			max = 2
		}
		if len(args) == 0 || len(args) > max || !number.MatchString(args[0]) {
			return Command{}, usageErr(u, "Name the pipeline by its number, as its thread shows it: `/slipway %s 42`.", verb)
		}
		c.Pipeline, _ = strconv.Atoi(strings.TrimPrefix(args[0], "#"))
		if len(args) == 2 {
			if !jobName.MatchString(args[1]) {
				return Command{}, usageErr(u, "%q is not a job name.", clip(args[1]))
			}
			c.Job = args[1]
		}
		return c, nil
	}
	return Command{}, usageErr(Usage, "slipway does not know %q.", clip(w[0]))
}
