package slack

import (
	"fmt"
	"strings"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot"
)

// Block Kit's limits (https://api.slack.com/reference/block-kit), which
// a message must keep or Slack refuses it whole with invalid_blocks.
const (
	maxBlocks          = 50
	maxSectionText     = 3000
	maxContextElements = 10
	maxContextText     = 3000
	maxButtons         = 25
	maxButtonLabel     = 75
	maxButtonValue     = 2000
	// maxFallback bounds the text shown in notifications, where Slack
	// cuts past about 4,000 characters anyway.
	maxFallback = 4000
)

// metadataType is the event_type of the metadata that carries a
// message's key, for Find.
const metadataType = "slipway_message"

// rendered is a message as Slack takes it.
type rendered struct {
	text   string // the fallback: notifications, and clients without blocks
	blocks []slackapi.Block
}

// render lays m out in Block Kit: the title in a section (in bold), the
// context lines in a context block, each section in a section block (its
// heading in bold over its lines), the text, the code in a code block,
// and the buttons in an actions block. Whatever Block Kit's limits cut is
// cut with "…", and a last context block says so.
//
// The title is a section, not a header block: a header takes plain text
// only, and the titles carry links and bold names.
func render(m bot.Message) rendered {
	r := rendered{text: fallback(m)}
	var cuts []string
	add := func(b slackapi.Block) { r.blocks = append(r.blocks, b) }

	if m.Title != "" {
		title := m.Title
		if !strings.Contains(title, "*") {
			// Bold whole unless it bolds its own parts: Slack's mrkdwn
			// does not nest bold.
			title = "*" + title + "*"
		}
		text, cut := clip(title, maxSectionText)
		if cut {
			cuts = append(cuts, "title")
		}
		add(section(text))
	}
	if ctx := contextBlock(m.Context); ctx != nil {
		add(ctx)
	}

	// The sections get what the other blocks leave: at most one each for
	// the text, the code, the buttons, and the note of what was cut.
	room := maxBlocks - len(r.blocks) - 4
	var sections []bot.Section
	for _, s := range m.Sections {
		if s.Heading != "" || len(s.Lines) > 0 {
			sections = append(sections, s)
		}
	}
	for i, s := range sections {
		if i == room-1 && len(sections) > room {
			add(section(fmt.Sprintf("… and %d more sections", len(sections)-i)))
			cuts = append(cuts, fmt.Sprintf("%d sections", len(sections)-i))
			break
		}
		text, cut := sectionText(s)
		if cut {
			cuts = append(cuts, "lines of "+plain(s.Heading))
		}
		add(section(text))
	}

	if m.Text != "" {
		text, cut := clip(m.Text, maxSectionText)
		if cut {
			cuts = append(cuts, "text")
		}
		add(section(text))
	}
	if m.Code != "" {
		text, cut := codeBlock(m.Code)
		if cut {
			cuts = append(cuts, "log, to its last lines")
		}
		add(section(text))
	}
	if actions := actionsBlock(m.Buttons); actions != nil {
		add(actions)
	}
	if len(cuts) > 0 {
		add(slackapi.NewContextBlock("", mrkdwn("_Cut to fit in Slack: "+strings.Join(cuts, ", ")+"._")))
	}
	if len(r.blocks) == 0 {
		// An edit without blocks would keep the message's old ones.
		add(section(r.text))
	}
	return r
}

// fallback is a message's text for notifications: its summary, else its
// title, else its text.
func fallback(m bot.Message) string {
	for _, s := range []string{m.Summary, m.Title, m.Text} {
		if strings.TrimSpace(s) != "" {
			text, _ := clip(s, maxFallback)
			return text
		}
	}
	return "slipway"
}

func mrkdwn(text string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, false)
}

func section(text string) *slackapi.SectionBlock {
	return slackapi.NewSectionBlock(mrkdwn(text), nil, nil)
}

// contextBlock shows lines as a context block's elements; past Block
// Kit's ten, the last element holds the rest.
func contextBlock(lines []string) *slackapi.ContextBlock {
	var elems []slackapi.MixedElement
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if len(elems) == maxContextElements-1 && len(lines)-i > 1 {
			line = strings.Join(lines[i:], " · ")
			i = len(lines)
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		text, _ := clip(line, maxContextText)
		elems = append(elems, mrkdwn(text))
	}
	if len(elems) == 0 {
		return nil
	}
	return slackapi.NewContextBlock("", elems...)
}

// sectionText is a section's heading in bold over its lines, as many
// whole lines as fit and then how many did not.
func sectionText(s bot.Section) (string, bool) {
	var b strings.Builder
	if s.Heading != "" {
		heading, _ := clip(s.Heading, 200)
		b.WriteString("*" + heading + "*")
	}
	n := utf8.RuneCountInString(b.String())
	for i, line := range s.Lines {
		need := n + 1 + utf8.RuneCountInString(line)
		more := fmt.Sprintf("\n… and %d more lines", len(s.Lines)-i)
		// A line fits if it leaves room for saying what comes after it.
		if last := i == len(s.Lines)-1; last && need > maxSectionText || !last && need+utf8.RuneCountInString(more) > maxSectionText {
			b.WriteString(more)
			return strings.TrimPrefix(b.String(), "\n"), true
		}
		b.WriteString("\n" + line)
		n = need
	}
	return strings.TrimPrefix(b.String(), "\n"), false
}

// codeBlock shows raw text (a log's tail) in a code block: escaped, as
// Slack wants any text that is not its markup (so that a log cannot
// mention @channel), and cut from its start, since a log's last lines
// are the ones that say what failed.
func codeBlock(code string) (string, bool) {
	code = escape(strings.TrimRight(code, "\n"))
	// A run of three backquotes would end the block early.
	code = strings.ReplaceAll(code, "```", "`\u200b``")
	const fence, end = "```\n", "\n```"
	room := maxSectionText - utf8.RuneCountInString(fence+end)
	runes := []rune(code)
	if len(runes) <= room {
		return fence + code + end, false
	}
	tail := runes[len(runes)-(room-2):]
	// Start at a line's start where one is near.
	if i := strings.IndexByte(string(tail), '\n'); i >= 0 && i < 200 {
		tail = []rune(string(tail)[i+1:])
	}
	return fence + "…\n" + string(tail) + end, true
}

// escape writes text as Slack shows it literally.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// actionsBlock shows buttons in an actions block, each with its action
// as action_id and its value as value.
func actionsBlock(buttons []bot.Button) *slackapi.ActionBlock {
	var elems []slackapi.BlockElement
	for i, b := range buttons {
		if i == maxButtons {
			break
		}
		label, _ := clip(b.Label, maxButtonLabel)
		value, _ := clip(b.Value, maxButtonValue)
		btn := slackapi.NewButtonBlockElement(b.Action, value, slackapi.NewTextBlockObject(slackapi.PlainTextType, label, true, false))
		switch b.Style {
		case "primary":
			btn.Style = slackapi.StylePrimary
		case "danger":
			btn.Style = slackapi.StyleDanger
		}
		elems = append(elems, btn)
	}
	if len(elems) == 0 {
		return nil
	}
	return slackapi.NewActionBlock("", elems...)
}

// clip cuts s to at most n characters, the last of them "…".
func clip(s string, n int) (string, bool) {
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	return string([]rune(s)[:n-1]) + "…", true
}

// plain is mrkdwn without its emoji codes and bold, for a short mention.
func plain(s string) string {
	s = strings.ReplaceAll(s, "*", "")
	var out []string
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, ":") && strings.HasSuffix(w, ":") && len(w) > 1 {
			continue
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

// metadata is the message metadata that carries m's key, nil for none.
func metadata(key string) *slackapi.SlackMetadata {
	if key == "" {
		return nil
	}
	return &slackapi.SlackMetadata{EventType: metadataType, EventPayload: map[string]any{"key": key}}
}
