package awstest

import (
	"maps"
	"time"
)

// Call is a request the fake answered.
type Call struct {
	Service   string // STS, S3, ECR, Beanstalk, Lambda; "" if it matched none
	Operation string // "UpdateEnvironment", "PutObject"...
	// Params are the decoded parameters: ECR's JSON body; the form of a
	// query call without Action and Version ("SourceBundle.S3Key",
	// "EnvironmentNames.member.1"); a Lambda call's JSON body with its path
	// labels and query parameters ("FunctionName", "Qualifier"); an S3
	// call's Bucket, Key, ContentLength and ContentType, never its body.
	Params map[string]any
	Time   time.Time // when the request arrived
	// AccessKeyID and Principal are who signed the request: the static
	// test key and UserARN, or the temporary key of an assumed role and
	// the role session's ARN. Empty when the request was refused unsigned
	// or signed by someone unknown.
	AccessKeyID string
	Principal   string
	Status      int    // the HTTP status of the answer
	ErrorCode   string // the AWS error code of the answer, "" on success
	RequestID   string
}

// Calls returns every call answered so far, in the order answered.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Call, len(f.calls))
	for i, c := range f.calls {
		c.Params = maps.Clone(c.Params)
		out[i] = c
	}
	return out
}

// CallsTo returns the calls of one operation of service, in the order
// answered; op "" selects every operation of service.
func (f *Fake) CallsTo(service, op string) []Call {
	var out []Call
	for _, c := range f.Calls() {
		if c.Service == service && (op == "" || c.Operation == op) {
			out = append(out, c)
		}
	}
	return out
}
