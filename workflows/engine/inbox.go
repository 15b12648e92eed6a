package engine

import "time"

// InboxItem is a request from outside (a webhook delivery, a chat
// command) as it was acknowledged: kept in the store from then until it
// is handled, so that a crash in between loses none, and deduplicated by
// its sender's ID, so that a redelivery is handled once. Its adapter
// (forge, bot) parses and handles it; the store only keeps it.
type InboxItem struct {
	Source   string // who sent it: "github", "slack"
	ID       string // the sender's ID for it: X-GitHub-Delivery, a Slack envelope ID
	Kind     string // the sender's kind of request: "push", "slash_commands"
	Payload  []byte
	Received time.Time
	Attempts int // handlings that failed and will be tried again
}
