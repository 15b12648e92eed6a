package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Role is an IAM role that AssumeRole may assume.
type Role struct {
	ARN string // "arn:aws:iam::123456789012:role/slipway-deploy"
	// ExternalID, when set, must be given by AssumeRole, as a role's trust
	// policy can demand.
	ExternalID string
	// MaxSessionDuration bounds AssumeRole's DurationSeconds (default one
	// hour, as for a new role).
	MaxSessionDuration time.Duration
}

// AssumedRole is a successful AssumeRole.
type AssumedRole struct {
	RoleARN     string
	SessionName string
	ExternalID  string
	// By is who assumed the role: UserARN, or the ARN of another role
	// session when roles are chained.
	By string
	// AccessKeyID is the temporary key handed out; calls signed with it
	// record the session's ARN as their Principal.
	AccessKeyID string
	SessionARN  string // "arn:aws:sts::123456789012:assumed-role/slipway-deploy/session"
	Expiration  time.Time
	Time        time.Time
}

// session is a set of temporary credentials that AssumeRole handed out.
type session struct {
	accessKeyID string
	token       string
	arn         string
	userID      string
}

// AddRole adds a role that AssumeRole may assume, or replaces the one
// with its ARN.
func (f *Fake) AddRole(r Role) {
	f.tb.Helper()
	if !roleARN.MatchString(r.ARN) {
		f.tb.Fatalf("awstest: AddRole: %q is not a role ARN of account %s", r.ARN, AccountID)
	}
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = time.Hour
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[r.ARN] = r
}

// AssumedRoles returns every successful AssumeRole, in order.
func (f *Fake) AssumedRoles() []AssumedRole {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AssumedRole(nil), f.assumed...)
}

var (
	roleARN     = regexp.MustCompile(`^arn:aws:iam::` + AccountID + `:role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func (f *Fake) serveSTS(w http.ResponseWriter, req *request) *apiError {
	switch req.op {
	case "GetCallerIdentity":
		writeQueryResult(w, req, getCallerIdentityResult{
			XMLName: xml.Name{Local: "GetCallerIdentityResult"},
			Arn:     req.who.arn, UserID: req.who.userID, Account: AccountID,
		})
		return nil
	case "AssumeRole":
		return f.assumeRole(w, req)
	default:
		return notModeled(STS, req.op)
	}
}

type getCallerIdentityResult struct {
	XMLName xml.Name
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

type assumeRoleResult struct {
	XMLName         xml.Name        `xml:"AssumeRoleResult"`
	AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
	Credentials     stsCredentials  `xml:"Credentials"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

func (f *Fake) assumeRole(w http.ResponseWriter, req *request) *apiError {
	arn := req.form.Get("RoleArn")
	name := req.form.Get("RoleSessionName")
	externalID := req.form.Get("ExternalId")
	var problems []string
	if len(arn) < 20 {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20", arn))
	}
	if !sessionName.MatchString(name) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name))
	}
	duration := time.Hour
	if s := req.form.Get("DurationSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 900 {
			problems = append(problems, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", s))
		}
		duration = time.Duration(n) * time.Second
	}
	if len(problems) > 0 {
		return &apiError{status: http.StatusBadRequest, code: "ValidationError",
			message: fmt.Sprintf("%d validation error%s detected: %s", len(problems), plural(len(problems)), strings.Join(problems, "; "))}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	role, ok := f.roles[arn]
	if !ok || role.ExternalID != externalID {
		// STS says no more than this about a role that does not exist or
		// whose trust policy refuses the caller.
		return &apiError{status: http.StatusForbidden, code: "AccessDenied",
			message: fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", req.who.arn, arn)}
	}
	if duration > role.MaxSessionDuration {
		return &apiError{status: http.StatusBadRequest, code: "ValidationError",
			message: "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."}
	}
	n := f.nextID()
	roleName := roleARN.FindStringSubmatch(arn)[1]
	sess := &session{
		accessKeyID: fmt.Sprintf("ASIASLIPWAYTEST%05d", n),
		token:       fmt.Sprintf("FwoGZXIvYXdzEAwaDslipway%06dSessionToken", n),
		arn:         fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", AccountID, roleName, name),
		userID:      fmt.Sprintf("AROASLIPWAY%09d:%s", roleIDNumber(arn), name),
	}
	f.sessions[sess.accessKeyID] = sess
	expiration := req.at.Add(duration).UTC().Truncate(time.Second)
	f.assumed = append(f.assumed, AssumedRole{
		RoleARN: arn, SessionName: name, ExternalID: externalID, By: req.who.arn,
		AccessKeyID: sess.accessKeyID, SessionARN: sess.arn, Expiration: expiration, Time: req.at,
	})
	writeQueryResult(w, req, assumeRoleResult{
		AssumedRoleUser: assumedRoleUser{Arn: sess.arn, AssumedRoleID: sess.userID},
		Credentials: stsCredentials{
			AccessKeyID:     sess.accessKeyID,
			SecretAccessKey: fmt.Sprintf("slipwayTestSecret%023d", n),
			SessionToken:    sess.token,
			Expiration:      expiration.Format(time.RFC3339),
		},
	})
	return nil
}

// roleIDNumber is a stable number for a role, for its AROA... unique ID.
func roleIDNumber(arn string) int {
	h := 0
	for _, c := range arn {
		h = (h*31 + int(c)) % 1_000_000_000
	}
	return h
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
