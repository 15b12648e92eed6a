package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/bot"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// Messages as the notifier makes them (see bot/thread.go and
// bot/notifier.go), written as Slack's words write them.
var (
	parentMessage = bot.Message{
		Summary: "backend main 1111111: running",
		Title:   ":arrows_counterclockwise: *backend* · main · <https://github.com/acme/backend/commit/1111111111111111111111111111111111111111|1111111> Fix the login redirect",
		Context: []string{"acme/backend", "by <@U0ALICE>", "<https://slipway.example.com/pipelines/p1|pipeline 1 (push) running>"},
		Sections: []bot.Section{{Heading: ":arrows_counterclockwise: ci", Lines: []string{
			":white_check_mark: test · 12s", ":x: lint · 3s · exit 2", ":double_vertical_bar: hold", ":white_small_square: ship"}}},
		Key: "parent/backend/1111111111111111111111111111111111111111",
	}
	approvalMessage = bot.Message{
		Summary: "hold waits for approval",
		Title:   ":double_vertical_bar: *hold* waits for approval",
		Text: "Approving lets the deploy to production go on (pipeline 1, `1111111`). Who may approve: <@U0RELEASE> or <!subteam^S0SRE>. " +
			"It expires Mon 8 Jan 10:00 UTC.",
		Buttons: []bot.Button{
			{Action: bot.ActionApprove, Label: "Approve", Style: "primary", Value: "j-hold-1"},
			{Action: bot.ActionReject, Label: "Reject", Style: "danger", Value: "j-hold-1"},
		},
		Key: "ev/7",
	}
	failureMessage = bot.Message{
		Summary: "lint failed",
		Title:   ":x: *lint* failed (exit 2)",
		Text:    "<https://slipway.example.com/pipelines/p1|The whole log>",
		Code:    "lint line 1\nsrc/app.go:12: x < y && y > z\n``` not a fence\n<!channel> look",
		Key:     "ev/9",
	}
)

func TestBlocksGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    bot.Message
	}{
		{"parent", parentMessage},
		{"approval_request", approvalMessage},
		{"failure_reply", failureMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(tc.m)
			// The JSON Slack gets, written for people: < and & as they are.
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{"text": r.text, "blocks": r.blocks, "metadata": metadata(tc.m.Key)}); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// Whatever a message holds, it stays within Block Kit's limits, and says
// what it cut.
func TestBlocksWithinLimits(t *testing.T) {
	long := strings.Repeat("é", 5000)
	var lines []string
	for i := range 400 {
		lines = append(lines, fmt.Sprintf(":white_check_mark: job-%03d · 1s", i))
	}
	var sections []bot.Section
	for i := range 80 {
		sections = append(sections, bot.Section{Heading: fmt.Sprint("workflow ", i), Lines: []string{"a", "b"}})
	}
	var context []string
	for i := range 14 {
		context = append(context, fmt.Sprint("context ", i))
	}
	var buttons []bot.Button
	for i := range 30 {
		buttons = append(buttons, bot.Button{Action: fmt.Sprint("b", i), Label: strings.Repeat("x", 100), Value: long})
	}
	for _, tc := range []struct {
		name     string
		m        bot.Message
		cut      bool
		contains []string
	}{
		{"a long title", bot.Message{Title: long}, true, []string{"_Cut to fit in Slack: title._"}},
		{"a long section", bot.Message{Sections: []bot.Section{{Heading: ":x: wide", Lines: lines}}}, true, []string{"more lines", "lines of wide"}},
		{"many sections", bot.Message{Title: "t", Context: context, Sections: sections, Text: "x", Code: "y", Buttons: buttons[:2]}, true, []string{"more sections"}},
		{"a long log", bot.Message{Code: strings.Repeat("line\n", 2000) + "the last line"}, true, []string{"the last line", "log, to its last lines"}},
		{"many buttons", bot.Message{Buttons: buttons}, false, nil},
		{"only a summary", bot.Message{Summary: "hello"}, false, []string{"hello"}},
		{"nothing", bot.Message{}, false, []string{"slipway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(tc.m)
			b, _ := json.Marshal(r.blocks)
			var blocks []map[string]any
			json.Unmarshal(b, &blocks)
			if len(blocks) == 0 || len(blocks) > maxBlocks {
				t.Errorf("%d blocks", len(blocks))
			}
			for i, bl := range blocks {
				if text, ok := bl["text"].(map[string]any); ok {
					if n := utf8.RuneCountInString(text["text"].(string)); n > maxSectionText {
						t.Errorf("block %d: %d characters", i, n)
					}
				}
				if els, ok := bl["elements"].([]any); ok && (bl["type"] == "context" && len(els) > maxContextElements || len(els) > maxButtons) {
					t.Errorf("block %d: %d elements", i, len(els))
				}
			}
			if cut := bytes.Contains(b, []byte("Cut to fit in Slack")); cut != tc.cut {
				t.Errorf("says it cut: %v, want %v", cut, tc.cut)
			}
			for _, s := range tc.contains {
				if !bytes.Contains(b, []byte(s)) {
					t.Errorf("blocks lack %q", s)
				}
			}
			if utf8.RuneCountInString(r.text) > maxFallback {
				t.Errorf("fallback text of %d characters", utf8.RuneCountInString(r.text))
			}
		})
	}
}
