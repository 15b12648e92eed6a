package bot

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		cmd, text string
		want      Command
		err       string // part of the ParseError's message
	}{
		{"/deploy", "backend@v1.4.2 to staging", Command{Verb: "deploy", App: "backend", Ref: "v1.4.2", Env: "staging"}, ""},
		{"/deploy", "backend production", Command{Verb: "deploy", App: "backend", Env: "production"}, ""},
		{"/deploy", "backend@3f2a9c1 production", Command{Verb: "deploy", App: "backend", Ref: "3f2a9c1", Env: "production"}, ""},
		{"/deploy", "  backend@feature/login   TO   staging ", Command{Verb: "deploy", App: "backend", Ref: "feature/login", Env: "staging"}, ""},
		{"/deploy", "", Command{}, "needs an app and an environment"},
		{"/deploy", "backend", Command{}, "needs an app and an environment"},
		{"/deploy", "backend to to staging", Command{}, "needs an app and an environment"},
		{"/deploy", "Backend staging", Command{}, "is not an app name"},
		{"/deploy", "backend@ staging", Command{}, "is not a branch, tag or commit"},
		{"/deploy", "backend@--upload-pack=evil staging", Command{}, "is not a branch, tag or commit"},
		{"/deploy", "backend@main;rm staging", Command{}, ""},
		{"/deploy", "backend@a..b staging", Command{}, "is not a branch, tag or commit"},
		{"/deploy", "backend@$(id) staging", Command{}, ""},
		{"/deploy", "backend@`id` staging", Command{}, ""},
		{"/deploy", "backend prod/../x", Command{}, "is not an environment name"},
		{"/rollback", "backend production", Command{Verb: "rollback", App: "backend", Env: "production"}, ""},
		{"/rollback", "backend in production", Command{Verb: "rollback", App: "backend", Env: "production"}, ""},
		{"/rollback", "backend production to 3F2A9C1", Command{Verb: "rollback", App: "backend", Env: "production", Target: "3f2a9c1"}, ""},
		{"/rollback", "backend in production to #12", Command{Verb: "rollback", App: "backend", Env: "production", Target: "12"}, ""},
		{"/rollback", "backend production to main", Command{}, "neither a commit"},
		{"/rollback", "backend production to", Command{}, "needs an app and an environment"},
		{"/rollback", "backend@abc1234 production", Command{}, "not with @"},
		{"/slipway", "", Command{Verb: "help"}, ""},
		{"/slipway", "HELP", Command{Verb: "help"}, ""},
		{"/slipway", "status", Command{Verb: "status"}, ""},
		{"/slipway", "status backend", Command{Verb: "status", App: "backend"}, ""},
		{"/slipway", "status backend staging", Command{}, "not how"},
		{"/slipway", "history backend production", Command{Verb: "history", App: "backend", Env: "production"}, ""},
		{"/slipway", "history backend", Command{}, "not how"},
		{"/slipway", "lock backend production db migration, back at 5", Command{Verb: "lock", App: "backend", Env: "production", Reason: "db migration, back at 5"}, ""},
		{"/slipway", "lock backend production", Command{Verb: "lock", App: "backend", Env: "production"}, ""},
		{"/slipway", "lock backend production " + strings.Repeat("x", 201), Command{}, "at most 200"},
		{"/slipway", "unlock backend production", Command{Verb: "unlock", App: "backend", Env: "production"}, ""},
		{"/slipway", "cancel 42", Command{Verb: "cancel", Pipeline: 42}, ""},
		{"/slipway", "cancel #42", Command{Verb: "cancel", Pipeline: 42}, ""},
		{"/slipway", "cancel backend 42", Command{Verb: "cancel", App: "backend", Pipeline: 42}, ""},
		{"/slipway", "cancel 42 43", Command{}, "by its number"},
		{"/slipway", "cancel 0", Command{}, "by its number"},
		{"/slipway", "cancel 99999999999", Command{}, "by its number"},
		{"/slipway", "rerun 42", Command{Verb: "rerun", Pipeline: 42}, ""},
		{"/slipway", "rerun backend 42 test-20-linux", Command{Verb: "rerun", App: "backend", Pipeline: 42, Job: "test-20-linux"}, ""},
		{"/slipway", "rerun 42 ../../x", Command{}, "is not a job name"},
		{"/slipway", "deploy backend staging", Command{}, "does not know"},
		{"/slipway", "status back\x00end", Command{}, "cannot read"},
		{"/slipway", strings.Repeat("a ", 600), Command{}, "characters long"},
		{"/nope", "x", Command{}, "does not know the command"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+tt.text, func(t *testing.T) {
			got, err := Parse(tt.cmd, tt.text)
			var pe *ParseError
			switch {
			case tt.want.Verb != "":
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			case !errors.As(err, &pe):
				t.Fatalf("got %+v, %v; want a ParseError", got, err)
			case !strings.Contains(pe.Msg, tt.err) || pe.Usage == "":
				t.Errorf("error %q (usage %q), want %q and a usage", pe.Msg, pe.Usage, tt.err)
			}
		})
	}
}

// FuzzParse: any text is a command or a ParseError with a usage, and
// what a command carries matches its patterns.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"backend@v1 to staging", "backend in production to #3", "lock a b c d", "rerun a 1 j", "\x00", "@@", "a@b@c d"} {
		f.Add("/deploy", s)
		f.Add("/slipway", s)
		f.Add("/rollback", s)
	}
	f.Fuzz(func(t *testing.T, cmd, text string) {
		c, err := Parse(cmd, text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Msg == "" || pe.Usage == "" {
				t.Fatalf("Parse(%q, %q) = %v, not a ParseError with a usage", cmd, text, err)
			}
			return
		}
		if c.App != "" && !appName.MatchString(c.App) || c.Env != "" && !envName.MatchString(c.Env) ||
			c.Job != "" && !jobName.MatchString(c.Job) || c.Ref != "" && checkRef("", c.Ref) != nil ||
			strings.ContainsAny(c.Ref+c.Env+c.App+c.Job+c.Target, " \t\n;$`|&<>") {
			t.Fatalf("Parse(%q, %q) let through %+v", cmd, text, c)
		}
	})
}
