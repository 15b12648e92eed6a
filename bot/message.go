package bot

// Message is what the bot posts in a chat, as parts an adapter renders:
// Block Kit on Slack, indented lines in a terminal. Text is markdown of
// the kind chats share (*bold*, `code`, <url|label> links).
type Message struct {
	// Summary is the message in one line: what a notification shows, and
	// the text of a chat that cannot render the rest.
	Summary string
	// Title is the first line, in bold.
	Title string
	// Context lines are small print under the title (repo, branch,
	// commit, author).
	Context []string
	// Sections are blocks of lines with a heading (a workflow's jobs).
	Sections []Section
	// Text is the body.
	Text string
	// Code is shown in a code block (a failed job's last log lines).
	Code string
	// Buttons are actions under the message.
	Buttons []Button
	// Key identifies the message among the bot's own, so that a post
	// tried again after a crash can be found rather than made twice.
	Key string
}

// Section is a heading with its lines.
type Section struct {
	Heading string
	Lines   []string
}

// Button is an action under a message. Its meaning comes from the
// message it is on (see Press), never from anything the chat sends back.
type Button struct {
	Action string // ActionApprove, ActionReject
	Label  string
	Style  string // "primary", "danger", ""
	Value  string // opaque to the chat; what the adapter keeps to route the press
}

// Button actions.
const (
	ActionApprove = "approve"
	ActionReject  = "reject"
)
