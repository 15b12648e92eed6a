// Package console is the chat in a terminal: the same bot as on Slack,
// with commands typed as lines, threads printed as indented text with
// their updates, and buttons pressed as `approve N` / `reject N`. It also
// reads a pipe, so that a test or a README can script a session.
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/internal/lazyre"
)

// Channel is the console's one channel: every app's threads are here.
const Channel = "console"

// Console prints the bot's messages to a terminal: it is a bot.Chat.
type Console struct {
	mu        sync.Mutex
	out       io.Writer
	n         int
	messages  map[string]*posted // by ts
	approvals []string           // ts of approval requests, numbered from 1
}

type posted struct {
	threadTS string
	m        bot.Message
	lines    []string // as last printed
	label    string   // what its updates are prefixed with
}

// New returns a console printing to out.
func New(out io.Writer) *Console {
	return &Console{out: out, messages: map[string]*posted{}}
}

// Words are the bot's words for a terminal: people and channels by name.
func Words() bot.Words {
	return bot.Words{Channel: func(id string) string { return "the " + id }}
}

var _ bot.Chat = (*Console)(nil)

// Post prints a message: a thread's parent in full, a reply indented
// under it; an approval request gets its number for `approve N`.
func (c *Console) Post(ctx context.Context, channel, threadTS string, broadcast bool, m bot.Message) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	ts := strconv.Itoa(c.n)
	p := &posted{threadTS: threadTS, m: m}
	c.messages[ts] = p
	indent := ""
	if threadTS != "" {
		indent = "    "
		if parent := c.messages[threadTS]; parent != nil {
			p.label = parent.label
		}
	}
	lines := render(m)
	if len(m.Buttons) > 0 {
		c.approvals = append(c.approvals, ts)
		k := len(c.approvals)
		lines = append(lines, fmt.Sprintf("[approval %d] type `approve %d` or `reject %d`", k, k, k))
	}
	if threadTS == "" {
		p.label = label(m)
		fmt.Fprintln(c.out)
	}
	p.lines = lines
	for i, l := range lines {
		prefix := indent
		if threadTS != "" && i == 0 {
			prefix = "  ↳ "
		}
		fmt.Fprintln(c.out, prefix+l)
	}
	return ts, nil
}

// Update prints what changed in a message: a thread's parent prints the
// lines that are new, under its title; a reply prints its new text.
func (c *Console) Update(ctx context.Context, channel, ts string, m bot.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.messages[ts]
	if p == nil {
		return fmt.Errorf("console: no message %s", ts)
	}
	lines := render(m)
	if p.threadTS != "" {
		if !slices.Equal(lines, p.lines) {
			fmt.Fprintln(c.out, "  ↳ "+strings.Join(lines, "\n    "))
		}
		p.m, p.lines = m, lines
		return nil
	}
	var changed []string
	for i, l := range lines {
		if i > 0 && !slices.Contains(p.lines, l) {
			changed = append(changed, strings.TrimSpace(l))
		}
	}
	p.m, p.lines = m, lines
	if len(changed) > 0 {
		fmt.Fprintf(c.out, "  ~ [%s] %s\n", p.label, strings.Join(changed, "\n      "))
	}
	return nil
}

// Find finds a message by its key among those posted this session.
func (c *Console) Find(ctx context.Context, channel, threadTS, key string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ts, p := range c.messages {
		if p.threadTS == threadTS && p.m.Key == key {
			return ts, true, nil
		}
	}
	return "", false, nil
}

// Approval is the ts of approval request k (from 1); "" when none.
func (c *Console) Approval(k int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k < 1 || k > len(c.approvals) {
		return ""
	}
	return c.approvals[k-1]
}

// Say prints a line of the session (a command's reply, help).
func (c *Console) Say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		fmt.Fprintln(c.out, plain(l))
	}
}

var (
	emoji = map[string]string{
		":white_check_mark:": "✅", ":x:": "❌", ":no_entry:": "⛔", ":no_entry_sign:": "🚫", ":heavy_minus_sign:": "➖",
		":arrows_counterclockwise:": "🔄", ":hourglass_flowing_sand:": "⏳", ":double_vertical_bar:": "⏸️ ", ":warning:": "⚠️ ",
		":white_small_square:": "▫️", ":rocket:": "🚀", ":rewind:": "⏪", ":hourglass:": "⌛",
	}
	link     = lazyre.New(`<([^|>]+)\|([^>]+)>`)
	bareLink = lazyre.New(`<([^|>]+)>`)
)

// plain turns chat markup into terminal text.
func plain(s string) string {
	for k, v := range emoji {
		s = strings.ReplaceAll(s, k, v)
	}
	s = link.ReplaceAllString(s, "$2")
	s = bareLink.ReplaceAllString(s, "$1")
	return strings.ReplaceAll(s, "*", "")
}

// label names a thread in its updates: its title without the commit's
// title or status.
func label(m bot.Message) string {
	words := strings.Fields(plain(m.Title))
	if len(words) > 6 {
		words = words[:6]
	}
	if len(words) > 1 {
		words = words[1:]
	}
	return strings.Join(words, " ")
}

// render is a message as lines of text.
func render(m bot.Message) []string {
	var lines []string
	if m.Title != "" {
		lines = append(lines, plain(m.Title))
	}
	if len(m.Context) > 0 {
		lines = append(lines, "  "+plain(strings.Join(m.Context, " · ")))
	}
	for _, s := range m.Sections {
		lines = append(lines, "  "+plain(s.Heading))
		for _, l := range s.Lines {
			lines = append(lines, "    "+plain(l))
		}
	}
	if m.Text != "" {
		lines = append(lines, plain(m.Text))
	}
	if m.Code != "" {
		for _, l := range strings.Split(m.Code, "\n") {
			lines = append(lines, "  | "+l)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, plain(m.Summary))
	}
	return lines
}

// Session is what a console session acts on.
type Session struct {
	Console  *Console
	Bot      *bot.Bot
	Notifier *bot.Notifier
	// User is who types: `as <user>` changes it.
	User string
	// Push acts as a GitHub push of the repository's branch head ("" for
	// the current branch); it says what it started.
	Push func(ctx context.Context, user, branch string) (string, error)
	// Settle waits until nothing runs by itself any more (every pipeline
	// finished or waiting for an approval).
	Settle func(ctx context.Context) error
	// Scripted waits for pipelines to settle after each line, as a person
	// would before typing the next: for input from a pipe.
	Scripted bool
}

// Help is the console's own commands, beside the chat's.
const Help = "`push [branch]` acts as a GitHub push of the branch's head (default: the current branch)\n" +
	"`approve N` / `reject N` press approval request N's buttons\n" +
	"`as <user>` types as someone else; `whoami` says who you are\n" +
	"`wait` waits until nothing runs by itself; `help`; `quit`"

// Run reads commands until in ends, ctx ends or `quit`.
func (s *Session) Run(ctx context.Context, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	s.prompt()
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "quit" || line == "exit" {
			return nil
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			if s.Scripted {
				s.Console.Say("%s> %s", s.User, line)
			}
			if err := s.do(ctx, n, line); err != nil {
				return err
			}
			if s.Scripted && s.Settle != nil {
				if err := s.Settle(ctx); err != nil {
					return err
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		s.prompt()
	}
	if s.Settle != nil {
		s.Settle(ctx)
	}
	return sc.Err()
}

func (s *Session) prompt() {
	if !s.Scripted {
		s.Console.mu.Lock()
		fmt.Fprintf(s.Console.out, "%s> ", s.User)
		s.Console.mu.Unlock()
	}
}

// do runs one line.
func (s *Session) do(ctx context.Context, n int, line string) error {
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch word {
	case "help":
		s.Console.Say("%s\n%s", Help, bot.Usage)
	case "whoami":
		s.Console.Say("You are %s.", s.User)
	case "as":
		if !validUser.MatchString(rest) {
			s.Console.Say("`as <user>`: a user name is letters, digits, dots, dashes and underscores.")
			return nil
		}
		s.User = rest
		s.Console.Say("You are now %s.", s.User)
	case "wait":
		if s.Settle != nil {
			return s.Settle(ctx)
		}
	case "push":
		msg, err := s.Push(ctx, s.User, rest)
		if err != nil {
			s.Console.Say("push: %v", err)
			return nil
		}
		s.Console.Say("%s", msg)
	case "approve", "reject":
		k, err := strconv.Atoi(rest)
		ts := s.Console.Approval(k)
		if err != nil || ts == "" {
			s.Console.Say("There is no approval request %q; the thread shows each one's number.", rest)
			return nil
		}
		job, err := s.Notifier.ApprovalJob(ctx, Channel, ts)
		if err != nil {
			return err
		}
		r, err := s.Bot.Decide(ctx, bot.Press{User: s.User, Approve: word == "approve", JobID: job})
		if err != nil {
			return err
		}
		s.Console.Say("%s", r.Text)
	default:
		if !strings.HasPrefix(word, "/") {
			s.Console.Say("slipway does not know %q; `help` lists what it does.", word)
			return nil
		}
		r, err := s.Bot.Handle(ctx, bot.Request{ID: fmt.Sprintf("console-%d-%d", n, sessionStart), Command: word, Text: rest,
			Channel: Channel, User: s.User})
		if err != nil {
			return err
		}
		s.Console.Say("%s", r.Text)
	}
	return nil
}

var validUser = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// sessionStart makes this session's request IDs its own, in a store that
// outlives it.
var sessionStart = time.Now().UnixNano()
