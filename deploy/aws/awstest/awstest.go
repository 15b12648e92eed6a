// Package awstest is a fake AWS for tests of slipway's deploy/aws package
// and of the product end to end. It serves, on one loopback endpoint, the
// parts of STS, S3, ECR, Elastic Beanstalk and Lambda that slipway uses,
// each in its own wire protocol as aws-sdk-go-v2 speaks it (awsQuery with
// XML answers for STS and Elastic Beanstalk, awsJson1_1 for ECR, restJson1
// for Lambda, restXml with path-style addressing for S3), with the state
// changes the real services have: an environment is Updating for a while
// and then Ready and Green, or Red with events saying why; a function's
// update is InProgress and then Successful or Failed, and refuses other
// updates meanwhile. ECR's repositories are served by a real Docker
// Registry (Debian's docker-registry), so that an image pushed by the
// Docker Engine shows up in DescribeImages with its digest.
//
// One fake serves one test:
//
//	fake := awstest.New(t)
//	fake.AddBeanstalkEnvironment("backend", "backend-production", "v1")
//	cfg, _ := config.LoadDefaultConfig(ctx,
//		config.WithRegion(fake.Region()),
//		config.WithCredentialsProvider(fake.Credentials()),
//		config.WithBaseEndpoint(fake.Endpoint()))
//
// or, for a program that reads the standard environment variables, set
// AWS_ENDPOINT_URL to Endpoint(), AWS_REGION to Region() and the
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to AccessKeyID and
// SecretAccessKey. The fake routes each request to its service by its
// X-Amz-Target (ECR), its Action and signing service (STS, Elastic
// Beanstalk), its signing service or path (Lambda), or else as S3, as
// localstack does.
//
// Requests must carry a SigV4 Authorization header (or presigned query)
// for the test key, or for temporary credentials that AssumeRole handed
// out, scoped to the fake's region and the service the request is for;
// others are refused with the error each service gives. The signature
// itself is not verified: the fake checks who signed, not that the bytes
// were signed correctly.
//
// The test sets up what exists (AddBeanstalkEnvironment, AddFunction,
// AddRole, AddRepository, PushImage...), decides what fails
// (FailBeanstalkVersion, FailLambdaImage, Inject) and how long updates
// take (BeanstalkDeployTime, LambdaUpdateTime, Settle), then reads the
// state (BeanstalkEnvironment, LambdaFunction, Images, Object...) and
// every call (Calls), waiting with WaitFor where the code under test
// works in the background. Every method is safe for concurrent use.
package awstest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/slipway-ci/slipway/internal/changes"
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

// Default durations of the updates that take time at AWS, short enough
// for tests that poll every few milliseconds.
const (
	DefaultBeanstalkDeployTime = 200 * time.Millisecond
	DefaultLambdaUpdateTime    = 100 * time.Millisecond
)

// Option configures a Fake.
type Option func(*Fake)

// WithRegion sets the region the fake plays (default DefaultRegion).
func WithRegion(region string) Option {
	return func(f *Fake) { f.region = region }
}

// BeanstalkDeployTime sets how long an environment stays Updating after
// UpdateEnvironment (default DefaultBeanstalkDeployTime). A negative
// duration keeps it Updating until Settle.
func BeanstalkDeployTime(d time.Duration) Option {
	return func(f *Fake) { f.ebDeployTime = d }
}

// LambdaUpdateTime sets how long a function's LastUpdateStatus stays
// InProgress after UpdateFunctionCode (default DefaultLambdaUpdateTime).
// A negative duration keeps it InProgress until Settle.
func LambdaUpdateTime(d time.Duration) Option {
	return func(f *Fake) { f.lambdaUpdateTime = d }
}

// Fake is a fake AWS account in one region.
type Fake struct {
	tb     testing.TB
	region string
	srv    *httptest.Server
	reg    *registry

	mu      sync.Mutex
	closed  bool
	changed changes.Signal // notified at every change of state
	counter int            // request IDs and other identifiers, see nextID

	ebDeployTime     time.Duration
	lambdaUpdateTime time.Duration
	pending          []*transition

	calls  []Call
	faults []*fault

	roles    map[string]Role
	sessions map[string]*session // by access key ID
	assumed  []AssumedRole

	buckets map[string]*bucket

	repos map[string]*repository

	apps       map[string]*ebApp
	envs       []*ebEnv
	events     []*ebEvent
	ebFailures map[[2]string]string // (application, label) → reason

	functions      map[string]*function
	lambdaFailures map[string]string // image URI → reason
}

// New starts a fake AWS on a loopback port and stops it when tb ends. The
// account has nothing in it: tests add what they need. The Docker
// Registry behind ECR starts on first use (see RequireRegistry).
func New(tb testing.TB, opts ...Option) *Fake {
	tb.Helper()
	f := &Fake{
		tb:               tb,
		region:           DefaultRegion,
		ebDeployTime:     DefaultBeanstalkDeployTime,
		lambdaUpdateTime: DefaultLambdaUpdateTime,
		roles:            map[string]Role{},
		sessions:         map[string]*session{},
		buckets:          map[string]*bucket{},
		repos:            map[string]*repository{},
		apps:             map[string]*ebApp{},
		ebFailures:       map[[2]string]string{},
		functions:        map[string]*function{},
		lambdaFailures:   map[string]string{},
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

// Close stops the pending updates, the server and the registry. New
// arranges for it to be called when the test ends; calling it again does
// nothing.
func (f *Fake) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for _, p := range f.pending {
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	f.pending = nil
	f.notifyLocked()
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.reg.close()
}

// SetBeanstalkDeployTime changes how long the environments updated from
// now on stay Updating; see BeanstalkDeployTime.
func (f *Fake) SetBeanstalkDeployTime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ebDeployTime = d
}

// SetLambdaUpdateTime changes how long the function updates started from
// now on stay InProgress; see LambdaUpdateTime.
func (f *Fake) SetLambdaUpdateTime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lambdaUpdateTime = d
}

// Settle ends every update in progress now, as if its time had come:
// environments become Ready, functions' updates Successful or Failed.
func (f *Fake) Settle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pending {
		if p.timer != nil {
			p.timer.Stop()
		}
		if !p.done {
			p.done = true
			p.apply()
		}
	}
	f.pending = nil
	f.notifyLocked()
}

// transition is a change of state that AWS makes some time after a call:
// an environment's deploy ending, a function's update ending.
type transition struct {
	timer *time.Timer
	done  bool
	apply func() // called once, with f.mu held
}

// scheduleLocked runs apply after d, or at Settle when d is negative.
// f.mu must be held.
func (f *Fake) scheduleLocked(d time.Duration, apply func()) {
	p := &transition{apply: apply}
	f.pending = append(f.pending, p)
	if d < 0 {
		return
	}
	p.timer = time.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed || p.done {
			return
		}
		p.done = true
		p.apply()
		f.pending = slices.DeleteFunc(f.pending, func(q *transition) bool { return q == p })
		f.notifyLocked()
	})
}

// WaitFor waits until cond reports true, checking it at once and again
// after every change of the fake's state (a call, an update ending...).
// cond may call the fake's methods. It returns ctx's error if ctx ends
// first.
func (f *Fake) WaitFor(ctx context.Context, cond func() bool) error {
	if err := f.changed.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("awstest: waiting for a condition: %w", err)
	}
	return nil
}

// notifyLocked wakes the WaitFor calls. f.mu must be held.
func (f *Fake) notifyLocked() { f.changed.Notify() }

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
