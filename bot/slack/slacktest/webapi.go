package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Call is one Web API call as the fake received and answered it, refused
// ones included.
type Call struct {
	Method string     // "chat.postMessage"
	Params url.Values // the arguments, from a form or a JSON body alike, without the token
	At     time.Time  // when it arrived
	// Status is the HTTP status answered: 200, or an injected fault's
	// (429, 5xx), which answers without looking at the call.
	Status int
	// Error is Slack's error code when the answer was {"ok":false}.
	Error string
	// Response is the body answered with status 200.
	Response json.RawMessage
}

// apiError is an answer {"ok":false,"error":code}, with the details Slack
// gives for invalid_blocks.
type apiError struct {
	code    string
	details []string
}

func errCode(code string) *apiError { return &apiError{code: code} }

// tokenKind is the kind of token a method accepts.
type tokenKind int

const (
	botToken tokenKind = iota
	appToken
)

// webMethod is a Web API method the fake models. Its handler runs with f.mu
// held and answers the fields of an ok answer or an error; an error
// changes nothing.
type webMethod struct {
	token  tokenKind
	handle func(f *Fake, p url.Values) (map[string]any, *apiError)
}

var webMethods = map[string]webMethod{
	"auth.test":             {botToken, (*Fake).authTest},
	"apps.connections.open": {appToken, (*Fake).appsConnectionsOpen},
	"chat.postMessage":      {botToken, (*Fake).chatPostMessage},
	"chat.update":           {botToken, (*Fake).chatUpdate},
	"chat.postEphemeral":    {botToken, (*Fake).chatPostEphemeral},
	"users.info":            {botToken, (*Fake).usersInfo},
	"users.lookupByEmail":   {botToken, (*Fake).usersLookupByEmail},
	"usergroups.users.list": {botToken, (*Fake).usergroupsUsersList},
	"usergroups.list":       {botToken, (*Fake).usergroupsList},
	"conversations.info":    {botToken, (*Fake).conversationsInfo},
	"conversations.history": {botToken, (*Fake).conversationsHistory},
	"conversations.replies": {botToken, (*Fake).conversationsReplies},
}

// maxBody bounds the request bodies the fake reads; Slack's own limit is
// far above anything a message needs.
const maxBody = 4 << 20

// serveAPI answers POST|GET /api/METHOD as Slack does: HTTP 200 with
// {"ok":true,...} or {"ok":false,"error":...}, unless a fault answers
// first.
func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	name := strings.TrimPrefix(r.URL.Path, "/api/")
	params, token, decodeErr := readParams(r)

	f.mu.Lock()
	ft := f.faultLocked(name, at)
	f.mu.Unlock()
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		select {
		case <-t.C:
		case <-f.done:
		}
		t.Stop()
	}
	if ft.Status != 0 {
		f.mu.Lock()
		f.calls = append(f.calls, Call{Method: name, Params: params, At: at, Status: ft.Status})
		f.notifyLocked()
		f.mu.Unlock()
		f.logf("%s: refused with HTTP %d (injected)", name, ft.Status)
		if ft.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ft.RetryAfter)))
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(ft.Status)
		fmt.Fprintf(w, "<html><body>%d %s</body></html>\n", ft.Status, http.StatusText(ft.Status))
		return
	}

	f.mu.Lock()
	answer, apiErr := f.answerLocked(name, params, token, decodeErr)
	body := encodeAnswer(answer, apiErr)
	call := Call{Method: name, Params: params, At: at, Status: http.StatusOK, Response: body}
	if apiErr != nil {
		call.Error = apiErr.code
	}
	f.calls = append(f.calls, call)
	f.notifyLocked()
	f.mu.Unlock()

	if apiErr != nil {
		f.logf("%s: %s %s", name, apiErr.code, strings.Join(apiErr.details, "; "))
	} else {
		f.logf("%s: ok", name)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

// answerLocked checks the call's token and runs its method. f.mu must be
// held.
func (f *Fake) answerLocked(name string, params url.Values, token string, decodeErr *apiError) (map[string]any, *apiError) {
	m, ok := webMethods[name]
	if !ok {
		return nil, errCode("unknown_method")
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	want, other := BotToken, AppToken
	if m.token == appToken {
		want, other = AppToken, BotToken
	}
	switch token {
	case want:
	case "":
		return nil, errCode("not_authed")
	case other:
		// A good token of the wrong kind, as Slack tells it apart from
		// a bad one.
		return nil, errCode("not_allowed_token_type")
	default:
		return nil, errCode("invalid_auth")
	}
	return m.handle(f, params)
}

// encodeAnswer is the JSON body of an answer.
func encodeAnswer(answer map[string]any, apiErr *apiError) []byte {
	if apiErr != nil {
		answer = map[string]any{"ok": false, "error": apiErr.code}
		if len(apiErr.details) > 0 {
			messages := make([]string, len(apiErr.details))
			for i, d := range apiErr.details {
				messages[i] = "[ERROR] " + d
			}
			answer["errors"] = apiErr.details
			answer["response_metadata"] = map[string]any{"messages": messages}
		}
	} else {
		answer["ok"] = true
	}
	body, err := json.Marshal(answer)
	if err != nil {
		panic(fmt.Sprintf("slacktest: encoding an answer: %v", err))
	}
	return body
}

// readParams decodes a call's arguments as Slack takes them: a form in the
// query or an urlencoded or multipart body, or a JSON object body, whose
// values become strings (arrays and objects their compact JSON, as a form
// carries blocks). The token comes from "Authorization: Bearer", or from
// the form's "token" argument, which is what slack-go sends for most
// methods.
func readParams(r *http.Request) (params url.Values, token string, _ *apiError) {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && ct == "application/json" {
		params = r.URL.Query()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return params, token, errCode("invalid_json")
		}
		if err := addJSON(params, body); err != nil {
			return params, token, errCode("invalid_json")
		}
		params.Del("token") // Slack takes no token from a JSON body
		return params, token, nil
	}
	var err error
	if ct == "multipart/form-data" {
		err = r.ParseMultipartForm(maxBody)
	} else {
		err = r.ParseForm()
	}
	params = r.Form
	if params == nil {
		params = url.Values{}
	}
	if token == "" {
		token = params.Get("token")
	}
	params.Del("token")
	if err != nil {
		return params, token, errCode("invalid_form_data")
	}
	return params, token, nil
}

// addJSON adds the fields of a JSON object to params as strings: arrays
// and objects as their compact JSON, as a form carries blocks. An empty
// body adds nothing.
func addJSON(params url.Values, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var object map[string]any
	if err := dec.Decode(&object); err != nil {
		return err
	}
	for k, v := range object {
		switch v := v.(type) {
		case nil:
		case string:
			params.Set(k, v)
		case json.Number:
			params.Set(k, v.String())
		case bool:
			params.Set(k, strconv.FormatBool(v))
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			params.Set(k, string(b))
		}
	}
	return nil
}

// truthy is how Slack reads a boolean argument.
func truthy(s string) bool { return s == "true" || s == "1" }

func (f *Fake) authTest(url.Values) (map[string]any, *apiError) {
	return map[string]any{
		"url":                   "https://" + TeamDomain + ".slack.com/",
		"team":                  TeamName,
		"user":                  BotName,
		"team_id":               TeamID,
		"user_id":               BotUserID,
		"bot_id":                BotID,
		"is_enterprise_install": false,
	}, nil
}

// appsConnectionsOpen hands out a one-time URL of the fake's Socket Mode
// endpoint, ws:// where Slack's is wss://.
func (f *Fake) appsConnectionsOpen(url.Values) (map[string]any, *apiError) {
	ticket := fmt.Sprintf("%08x-0000-4000-8000-%012x", 0x7ac4e7, f.nextID())
	f.tickets[ticket] = true
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + AppID
	return map[string]any{"url": u}, nil
}

// Calls lists the Web API calls to method in the order they arrived, or
// every call when method is "".
func (f *Fake) Calls(method string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			c.Params = cloneValues(c.Params)
			out = append(out, c)
		}
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
