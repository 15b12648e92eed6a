package slacktest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Slack's documented limits on a message, as the fake enforces them.
const (
	// MaxTextLen is the most characters of a message's text: Slack
	// refuses longer texts with msg_too_long.
	MaxTextLen = 40000
	// MaxBlocks is the most blocks of a message.
	MaxBlocks = 50
	// MaxSectionTextLen is the most characters of a section's text.
	MaxSectionTextLen = 3000
)

// Block Kit's other limits (https://api.slack.com/reference/block-kit).
const (
	maxBlockIDLen      = 255
	maxActionIDLen     = 255
	maxSectionFields   = 10
	maxFieldLen        = 2000
	maxHeaderLen       = 150
	maxContextElements = 10
	maxActionElements  = 25
	maxButtonTextLen   = 75
	maxButtonValueLen  = 2000
	maxURLLen          = 3000
	maxAltTextLen      = 2000
	maxMarkdownLen     = 12000
)

// uncheckedBlocks are block types Slack knows whose contents the fake
// takes as they come.
var uncheckedBlocks = []string{
	"rich_text", "input", "file", "video", "table", "context_actions",
	"plan", "task_card", "card", "carousel", "alert", "call",
}

// checkBlocks parses and checks a message's blocks argument as Slack does
// (invalid_blocks_format when it is not a JSON array, invalid_blocks with
// Slack's json-pointer details when it breaks Block Kit's rules), and
// gives every block without a block_id one, as Slack does, derived from
// seed. It returns the blocks as the message keeps them, nil for none.
func checkBlocks(arg, seed string) (json.RawMessage, *apiError) {
	if strings.TrimSpace(arg) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(arg))
	dec.UseNumber()
	var blocks []any
	if err := dec.Decode(&blocks); err != nil || dec.More() {
		return nil, errCode("invalid_blocks_format")
	}
	if len(blocks) == 0 {
		return nil, nil
	}
	v := &blockChecker{blockIDs: map[string]bool{}}
	if len(blocks) > MaxBlocks {
		v.errorf("/blocks", "no more than %d items allowed", MaxBlocks)
	}
	for i, b := range blocks {
		v.block(b, fmt.Sprintf("/blocks/%d", i))
	}
	if len(v.errs) > 0 {
		return nil, &apiError{code: "invalid_blocks", details: v.errs}
	}
	for i, b := range blocks {
		block := b.(map[string]any)
		if _, ok := block["block_id"]; !ok {
			sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", seed, i))
			block["block_id"] = blockIDAlphabet(sum[:5])
		}
	}
	stored, err := json.Marshal(blocks)
	if err != nil {
		return nil, errCode("invalid_blocks_format")
	}
	return stored, nil
}

// blockIDAlphabet spells b as Slack's generated block IDs look ("6OIqa").
func blockIDAlphabet(b []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+="
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return s.String()
}

// blockChecker collects the rules a message's blocks break.
type blockChecker struct {
	errs     []string
	blockIDs map[string]bool
}

func (v *blockChecker) errorf(pointer, format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...)+" [json-pointer:"+pointer+"]")
}

func (v *blockChecker) block(b any, ptr string) {
	block, ok := b.(map[string]any)
	if !ok {
		v.errorf(ptr, "must provide an object")
		return
	}
	if id, ok := block["block_id"]; ok {
		if s, ok := v.str(id, ptr+"/block_id", maxBlockIDLen); ok {
			if v.blockIDs[s] {
				v.errorf(ptr+"/block_id", "duplicate block_id %q", s)
			}
			v.blockIDs[s] = true
		}
	}
	actionIDs := map[string]bool{}
	typ, _ := block["type"].(string)
	switch typ {
	case "section":
		text, hasText := block["text"]
		fields, hasFields := block["fields"]
		if !hasText && !hasFields {
			v.errorf(ptr, "must provide text or fields")
		}
		if hasText {
			v.textObject(text, ptr+"/text", MaxSectionTextLen, false)
		}
		if hasFields {
			if items, ok := v.array(fields, ptr+"/fields", 1, maxSectionFields); ok {
				for i, field := range items {
					v.textObject(field, fmt.Sprintf("%s/fields/%d", ptr, i), maxFieldLen, false)
				}
			}
		}
		if acc, ok := block["accessory"]; ok {
			v.element(acc, ptr+"/accessory", actionIDs)
		}
	case "header":
		v.textObject(block["text"], ptr+"/text", maxHeaderLen, true)
	case "divider":
	case "context":
		if items, ok := v.array(block["elements"], ptr+"/elements", 1, maxContextElements); ok {
			for i, e := range items {
				p := fmt.Sprintf("%s/elements/%d", ptr, i)
				if m, ok := e.(map[string]any); ok && m["type"] == "image" {
					v.image(m, p)
				} else {
					v.textObject(e, p, MaxSectionTextLen, false)
				}
			}
		}
	case "actions":
		if items, ok := v.array(block["elements"], ptr+"/elements", 1, maxActionElements); ok {
			for i, e := range items {
				v.element(e, fmt.Sprintf("%s/elements/%d", ptr, i), actionIDs)
			}
		}
	case "image":
		v.image(block, ptr)
	case "markdown":
		v.str(block["text"], ptr+"/text", maxMarkdownLen)
	default:
		if !slices.Contains(uncheckedBlocks, typ) {
			v.errorf(ptr+"/type", "unsupported type %q", typ)
		}
	}
}

// element checks an interactive element: a button fully, others by their
// action_id.
func (v *blockChecker) element(e any, ptr string, actionIDs map[string]bool) {
	el, ok := e.(map[string]any)
	if !ok {
		v.errorf(ptr, "must provide an object")
		return
	}
	if id, ok := el["action_id"]; ok {
		if s, ok := v.str(id, ptr+"/action_id", maxActionIDLen); ok {
			if actionIDs[s] {
				v.errorf(ptr+"/action_id", "duplicate action_id %q", s)
			}
			actionIDs[s] = true
		}
	}
	switch el["type"] {
	case "button":
		v.textObject(el["text"], ptr+"/text", maxButtonTextLen, true)
		if value, ok := el["value"]; ok {
			v.str(value, ptr+"/value", maxButtonValueLen)
		}
		if u, ok := el["url"]; ok {
			v.str(u, ptr+"/url", maxURLLen)
		}
		if style, ok := el["style"]; ok && style != "primary" && style != "danger" {
			v.errorf(ptr+"/style", "must be one of: primary, danger")
		}
	case "image":
		v.image(el, ptr)
	case nil:
		v.errorf(ptr+"/type", "missing required field: type")
	}
}

func (v *blockChecker) image(img map[string]any, ptr string) {
	v.str(img["alt_text"], ptr+"/alt_text", maxAltTextLen)
	if u, ok := img["image_url"]; ok {
		v.str(u, ptr+"/image_url", maxURLLen)
	} else if _, ok := img["slack_file"]; !ok {
		v.errorf(ptr, "must provide image_url or slack_file")
	}
}

// textObject checks a text composition object of at most max characters,
// plain_text only when plain.
func (v *blockChecker) textObject(t any, ptr string, max int, plain bool) {
	if t == nil {
		v.errorf(ptr, "missing required field: text")
		return
	}
	obj, ok := t.(map[string]any)
	if !ok {
		v.errorf(ptr, "must provide an object")
		return
	}
	switch obj["type"] {
	case "plain_text":
	case "mrkdwn":
		if plain {
			v.errorf(ptr+"/type", "must be plain_text")
		}
	default:
		v.errorf(ptr+"/type", "must be one of: plain_text, mrkdwn")
	}
	v.str(obj["text"], ptr+"/text", max)
}

// str checks a required string of 1 to max characters.
func (v *blockChecker) str(x any, ptr string, max int) (string, bool) {
	s, ok := x.(string)
	switch {
	case x == nil:
		v.errorf(ptr, "missing required field")
	case !ok:
		v.errorf(ptr, "must provide a string")
	case s == "":
		v.errorf(ptr, "must be more than 0 characters")
	case utf8.RuneCountInString(s) > max:
		v.errorf(ptr, "must be less than %d characters", max+1)
	default:
		return s, true
	}
	return "", false
}

// array checks an array of min to max items.
func (v *blockChecker) array(x any, ptr string, min, max int) ([]any, bool) {
	items, ok := x.([]any)
	switch {
	case x == nil:
		v.errorf(ptr, "missing required field")
	case !ok:
		v.errorf(ptr, "must provide an array")
	case len(items) < min:
		v.errorf(ptr, "must provide at least %d items", min)
	case len(items) > max:
		v.errorf(ptr, "no more than %d items allowed", max)
	default:
		return items, true
	}
	return nil, false
}

// allText is every string under a "text" key of blocks, in the order
// they are written, which is the order people read them in.
func allText(blocks json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(blocks))
	// For each open object or array: whether it is an object, and
	// whether the object's next string is a key.
	type level struct{ object, wantKey bool }
	var stack []level
	var texts []string
	key := ""
	for {
		tok, err := dec.Token()
		if err != nil {
			return texts
		}
		var top *level
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.wantKey = true
				}
				stack = append(stack, level{object: t == '{', wantKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.wantKey {
				key, top.wantKey = t, false
				continue
			}
			if top != nil && top.object {
				if key == "text" {
					texts = append(texts, t)
				}
				top.wantKey = true
			}
		default:
			if top != nil && top.object {
				top.wantKey = true
			}
		}
	}
}
