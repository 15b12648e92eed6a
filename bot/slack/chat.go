package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// findLimit is how many of a channel's latest messages Find reads; a
// thread is read in pages of it, up to findPages.
const (
	findLimit = 200
	findPages = 5
)

// Post posts m in channel (in threadTS's thread when set, broadcast also
// to the channel) and returns its ts. The message carries m.Key in its
// metadata, for Find. Posts are paced per channel; a rate limit is
// engine.RetryAfter with Slack's Retry-After, a channel that cannot take
// posts engine.Permanent. It never retries by itself: a post that may
// have gone through (a timeout) is for the caller to find.
func (a *Adapter) Post(ctx context.Context, channel, threadTS string, broadcast bool, m bot.Message) (string, error) {
	// A commit's link would unfurl into a preview in every thread.
	opts := append(messageOptions(m), slackapi.MsgOptionDisableLinkUnfurl())
	if threadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(threadTS))
		if broadcast {
			opts = append(opts, slackapi.MsgOptionBroadcast())
		}
	}
	return a.post(ctx, channel, opts...)
}

// post is chat.postMessage, paced.
func (a *Adapter) post(ctx context.Context, channel string, opts ...slackapi.MsgOption) (string, error) {
	if err := a.pace.wait(ctx, channel); err != nil {
		return "", err
	}
	_, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		err = a.classify("chat.postMessage", err)
		a.pace.limited(channel, err)
		return "", err
	}
	return ts, nil
}

// Update replaces the message at ts with m: its blocks whole, so that
// buttons no longer in m are gone. Metadata is set when m has a key, and
// else left as it was.
func (a *Adapter) Update(ctx context.Context, channel, ts string, m bot.Message) error {
	_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, messageOptions(m)...)
	return a.classify("chat.update", err)
}

// messageOptions are m's text, blocks and metadata.
func messageOptions(m bot.Message) []slackapi.MsgOption {
	r := render(m)
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(r.text, false),
		slackapi.MsgOptionBlocks(r.blocks...),
	}
	if md := metadata(m.Key); md != nil {
		opts = append(opts, slackapi.MsgOptionMetadata(*md))
	}
	return opts
}

// Find looks for a message of the bot's with key in its metadata: in the
// thread threadTS (its first findPages pages of findLimit), or among the
// channel's latest findLimit messages when threadTS is "". It is for a
// post that may have happened just before a crash, which is recent.
func (a *Adapter) Find(ctx context.Context, channel, threadTS, key string) (string, bool, error) {
	self, err := a.identity(ctx)
	if err != nil {
		return "", false, err
	}
	match := func(ms []slackapi.Message) (string, bool) {
		for _, m := range ms {
			mine := m.User != "" && m.User == self.UserID || m.BotID != "" && m.BotID == self.BotID
			if mine && m.Metadata.EventType == metadataType && m.Metadata.EventPayload["key"] == key {
				return m.Timestamp, true
			}
		}
		return "", false
	}
	if threadTS == "" {
		h, err := a.api.GetConversationHistoryContext(ctx, &slackapi.GetConversationHistoryParameters{
			ChannelID: channel, Limit: findLimit, IncludeAllMetadata: true})
		if err != nil {
			return "", false, a.classify("conversations.history", err)
		}
		ts, found := match(h.Messages)
		return ts, found, nil
	}
	cursor := ""
	for range findPages {
		ms, more, next, err := a.api.GetConversationRepliesContext(ctx, &slackapi.GetConversationRepliesParameters{
			ChannelID: channel, Timestamp: threadTS, Limit: findLimit, Cursor: cursor, IncludeAllMetadata: true})
		if err != nil {
			return "", false, a.classify("conversations.replies", err)
		}
		if ts, found := match(ms); found {
			return ts, true, nil
		}
		if !more || next == "" {
			break
		}
		cursor = next
	}
	return "", false, nil
}

// pacer paces posts per channel: Slack takes about one message a second
// in a channel, with short bursts, and answers more with 429. After a 429
// it holds the channel's posts for the Retry-After, without calling.
type pacer struct {
	every time.Duration
	burst int

	mu       sync.Mutex
	channels map[string]*channelPace
}

type channelPace struct {
	lim  *rate.Limiter
	hold time.Time // no posts before
}

func newPacer(every time.Duration, burst int) *pacer {
	if every <= 0 {
		every = time.Second
	}
	if burst <= 0 {
		burst = 3
	}
	return &pacer{every: every, burst: burst, channels: map[string]*channelPace{}}
}

func (p *pacer) channel(ch string) *channelPace {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.channels[ch]
	if c == nil {
		c = &channelPace{lim: rate.NewLimiter(rate.Every(p.every), p.burst)}
		p.channels[ch] = c
	}
	return c
}

// wait waits for ch's turn. It does not wait past a hold or ctx's
// deadline: it asks the caller to come back then, as a 429 would.
func (p *pacer) wait(ctx context.Context, ch string) error {
	c := p.channel(ch)
	p.mu.Lock()
	hold := time.Until(c.hold)
	p.mu.Unlock()
	if hold > 0 {
		return engine.RetryAfter(fmt.Errorf("slack: posts to %s held for %v after a rate limit", ch, hold.Round(time.Millisecond)), hold)
	}
	if err := c.lim.Wait(ctx); err != nil {
		return engine.RetryAfter(fmt.Errorf("slack: pacing posts to %s: %w", ch, err), p.every)
	}
	return nil
}

// limited holds ch's posts when err is a rate limit.
func (p *pacer) limited(ch string, err error) {
	var ra *engine.RetryAfterError
	if !errors.As(err, &ra) || ra.After <= 0 {
		return
	}
	c := p.channel(ch)
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := time.Now().Add(ra.After); until.After(c.hold) {
		c.hold = until
	}
}
