package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The services, named as their SigV4 signing names, which is also how
// Call.Service and Fault.Service name them.
const (
	STS       = "sts"
	S3        = "s3"
	ECR       = "ecr"
	Beanstalk = "elasticbeanstalk"
	Lambda    = "lambda"
)

// ecrTarget is the prefix of ECR's X-Amz-Target header.
const ecrTarget = "AmazonEC2ContainerRegistry_V20150921"

// maxBody bounds what the fake reads of a request: S3 source bundles and
// Lambda zips of tests are small.
const maxBody = 64 << 20

// request is one call to the fake, routed and decoded.
type request struct {
	r    *http.Request
	body []byte
	at   time.Time
	id   string // the request ID of the answer

	service string // "" when the request matched no service
	op      string
	params  map[string]any // what Call.Params records
	form    url.Values     // the parameters of a query-protocol call
	labels  []string       // the path's parts after the service's prefix, unescaped

	// malformed is set when the request could not be decoded: the answer
	// is that error, after authentication.
	malformed *apiError

	who principal
}

// principal is who signed a request.
type principal struct {
	accessKeyID string
	arn         string
	userID      string
}

// status records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// serveHTTP routes a request to its service, authenticates it, applies
// the faults injected, has the service answer it and records the call.
func (f *Fake) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	req := &request{r: r, at: time.Now()}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "awstest: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "awstest: request body over 64 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	req.body = body
	f.mu.Lock()
	req.id = f.uuidLocked()
	f.mu.Unlock()

	route(req)
	aerr := f.authenticate(req)
	if aerr == nil {
		aerr = req.malformed
	}
	if aerr == nil {
		aerr = f.faultFor(req)
	}
	if aerr == nil {
		switch req.service {
		case STS:
			aerr = f.serveSTS(w, req)
		case S3:
			aerr = f.serveS3(w, req)
		case ECR:
			aerr = f.serveECR(w, req)
		case Beanstalk:
			aerr = f.serveBeanstalk(w, req)
		case Lambda:
			aerr = f.serveLambda(w, req)
		default:
			aerr = &apiError{status: http.StatusBadRequest, code: "UnknownOperationException"}
		}
	}
	if aerr != nil {
		writeError(w, req, aerr)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	f.record(req, w.status, aerr)
}

// route finds the service and operation of req and decodes its
// parameters.
func route(req *request) {
	r := req.r
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		prefix, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		if prefix != ecrTarget {
			req.op = r.Header.Get("X-Amz-Target")
			return
		}
		req.service, req.op = ECR, op
		req.params = map[string]any{}
		if len(bytes.TrimSpace(req.body)) > 0 {
			if err := json.Unmarshal(req.body, &req.params); err != nil {
				req.malformed = &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "Start of structure or map found where not expected."}
			}
		}
	case isQuery(r):
		form, err := url.ParseQuery(string(req.body))
		if r.Method == http.MethodGet {
			form, err = r.URL.Query(), nil
		}
		if err != nil {
			req.service = signingService(r)
			req.malformed = &apiError{status: http.StatusBadRequest, code: "MalformedQueryString", message: err.Error()}
			return
		}
		req.form = form
		req.op = form.Get("Action")
		switch svc := signingService(r); {
		case svc == STS || svc == Beanstalk:
			req.service = svc
		case req.op == "AssumeRole" || req.op == "GetCallerIdentity":
			req.service = STS
		default:
			req.service = Beanstalk
		}
		req.params = map[string]any{}
		for k, v := range form {
			if k != "Action" && k != "Version" {
				req.params[k] = v[0]
			}
		}
	case signingService(r) == Lambda || strings.HasPrefix(r.URL.Path, lambdaPrefix+"/"):
		req.service = Lambda
		routeLambda(req)
	default:
		req.service = S3
		routeS3(req)
	}
}

// isQuery reports whether r is a call in the awsQuery protocol.
func isQuery(r *http.Request) bool {
	if r.Method == http.MethodGet {
		return r.URL.Path == "/" && r.URL.Query().Get("Action") != "" && r.URL.Query().Get("Version") != ""
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return r.Method == http.MethodPost && r.URL.Path == "/" && strings.TrimSpace(ct) == "application/x-www-form-urlencoded"
}

// pathLabels splits the escaped path after prefix into its unescaped
// parts: a function's ARN arrives with its colons escaped.
func pathLabels(r *http.Request, prefix string) []string {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), prefix)
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return nil
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	return parts
}

// record appends req's call to the calls.
func (f *Fake) record(req *request, status int, aerr *apiError) {
	c := Call{
		Service:     req.service,
		Operation:   req.op,
		Params:      req.params,
		Time:        req.at,
		AccessKeyID: req.who.accessKeyID,
		Principal:   req.who.arn,
		Status:      status,
		RequestID:   req.id,
	}
	if aerr != nil {
		c.ErrorCode = aerr.code
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.calls = append(f.calls, c)
	f.notifyLocked()
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, req *request, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("awstest: encoding %T: %v", v, err))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", req.id)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// awsTime formats t as the ISO 8601 timestamps of AWS's XML and Lambda's
// JSON, with milliseconds.
func awsTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// epochSeconds is t as awsJson's timestamps: seconds since the epoch, with
// milliseconds.
func epochSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
