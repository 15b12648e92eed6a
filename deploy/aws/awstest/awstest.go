// Package awstest is a fake AWS for tests of slipway's deploy/aws package
// and of the product end to end. It serves, on one loopback endpoint, the
// parts of AWS that slipway uses, each in its own wire protocol as
// aws-sdk-go-v2 speaks it: so far STS (awsQuery with XML answers), S3
// (restXml with path-style addressing) and ECR (awsJson1_1). ECR's
// repositories are served by a real Docker Registry (Debian's
// docker-registry), so that an image pushed by the Docker Engine shows up
// in DescribeImages with its digest.
//
// One fake serves one test:
//
//	fake := awstest.New(t)
//	cfg, _ := config.LoadDefaultConfig(ctx,
//		config.WithRegion(fake.Region()),
//		config.WithCredentialsProvider(fake.Credentials()),
//		config.WithBaseEndpoint(fake.Endpoint()))
//
// or, for a program that reads the standard environment variables, set
// AWS_ENDPOINT_URL to Endpoint(), AWS_REGION to Region() and the
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to AccessKeyID and
// SecretAccessKey. The fake routes each request to its service by its
// X-Amz-Target (ECR), its Action and signing service (STS), or else as
// S3, as localstack does.
//
// Requests must carry a SigV4 Authorization header (or presigned query)
// for the test key, or for temporary credentials that AssumeRole handed
// out, scoped to the fake's region and the service the request is for;
// others are refused with the error each service gives. The signature
// itself is not verified: the fake checks who signed, not that the bytes
// were signed correctly.
//
// The test sets up what exists (AddRole, PutObject, AddRepository,
// PushImage...), decides what fails (Inject), then reads the state
// (AssumedRoles, Object, Images...) and every call (Calls), waiting with
// WaitFor where the code under test works in the background. Every method
// is safe for concurrent use.
package awstest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// The account and the static credentials of the fake. The key pair is the
// example that AWS's own documentation uses; no real account has it.
const (
	AccountID       = "123456789012"
	AccessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	SecretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	// UserARN is the identity the static credentials belong to, as
	// GetCallerIdentity answers it.
	UserARN = "arn:aws:iam::" + AccountID + ":user/slipway-test"
	// DefaultRegion is the region of a fake made without WithRegion. It
	// is not us-east-1 on purpose: S3's CreateBucket wants a location
	// constraint everywhere else, and code that forgets it should fail
	// here rather than in production.
	DefaultRegion = "eu-west-1"
)

// Option configures a Fake.
type Option func(*Fake)

// WithRegion sets the region the fake plays (default DefaultRegion).
func WithRegion(region string) Option {
	return func(f *Fake) { f.region = region }
}

// Fake is a fake AWS account in one region.
type Fake struct {
	tb     testing.TB
	region string
	srv    *httptest.Server
	reg    *registry

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced at every change of state
	counter int           // request IDs and other identifiers, see nextID

	calls  []Call
	faults []*fault

	roles    map[string]Role
	sessions map[string]*session // by access key ID
	assumed  []AssumedRole

	buckets map[string]*bucket

	repos map[string]*repository
}

// New starts a fake AWS on a loopback port and stops it when tb ends. The
// account has nothing in it: tests add what they need. The Docker
// Registry behind ECR starts on first use (see RequireRegistry).
func New(tb testing.TB, opts ...Option) *Fake {
	tb.Helper()
	f := &Fake{
		tb:       tb,
		region:   DefaultRegion,
		changed:  make(chan struct{}),
		roles:    map[string]Role{},
		sessions: map[string]*session{},
		buckets:  map[string]*bucket{},
		repos:    map[string]*repository{},
	}
	for _, opt := range opts {
		opt(f)
	}
	f.reg = newRegistry(f)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	tb.Cleanup(f.Close)
	return f
}

// Endpoint is the fake's URL, "http://127.0.0.1:PORT", for AWS_ENDPOINT_URL
// or a client's BaseEndpoint. Every service is served there.
func (f *Fake) Endpoint() string { return f.srv.URL }

// Region is the region the fake plays.
func (f *Fake) Region() string { return f.region }

// Credentials returns a provider of the static test credentials
// (AccessKeyID, SecretAccessKey).
func (f *Fake) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")
}

// Close stops the server and the registry. New
// arranges for it to be called when the test ends; calling it again does
// nothing.
func (f *Fake) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.notifyLocked()
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.reg.close()
}

// WaitFor waits until cond reports true, checking it at once and again
// after every change of the fake's state (a call, an update ending...).
// cond may call the fake's methods. It returns ctx's error if ctx ends
// first.
func (f *Fake) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		changed := f.changed
		f.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("awstest: waiting for a condition: %w", ctx.Err())
		}
	}
}

// notifyLocked wakes the WaitFor calls. f.mu must be held.
func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// nextID returns the next number of the fake's identifiers. f.mu must be
// held.
func (f *Fake) nextID() int {
	f.counter++
	return f.counter
}

// uuidLocked returns a new identifier in the form of a UUID, as AWS's
// request IDs and revision IDs are: unique, and the same from run to run.
// f.mu must be held.
func (f *Fake) uuidLocked() string {
	n := f.nextID()
	return fmt.Sprintf("%08x-5eed-4a05-8000-%012x", n, n)
}

// logf logs to the test, whose output shows it when the test fails or
// runs with -v.
func (f *Fake) logf(format string, args ...any) {
	f.tb.Helper()
	f.tb.Logf("awstest: "+format, args...)
}
