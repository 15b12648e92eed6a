package awstest

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/wire")

// TestWire pins the bytes the fake answers, one request per protocol and
// outcome, against golden files in testdata/wire: the shapes the SDK
// reads, for review and so that a change to them is seen. Run with
// -update to rewrite them.
func TestWire(t *testing.T) {
	f := New(t, BeanstalkDeployTime(-1))
	f.AddBeanstalkEnvironment("backend", "backend-production", "v1")
	f.AddFunction("api", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:v1")
	f.AddRepository("backend")

	query := func(service, body string) rawRequest {
		return rawRequest{service: service, method: http.MethodPost, path: "/", body: body,
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}}
	}
	ecr := func(op, body string) rawRequest {
		return rawRequest{service: ECR, method: http.MethodPost, path: "/", body: body,
			header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amz-Target": {ecrTarget + "." + op}}}
	}
	tests := []struct {
		name string
		req  rawRequest
	}{
		{"sts-get-caller-identity", query(STS, "Action=GetCallerIdentity&Version=2011-06-15")},
		{"sts-unsigned", rawRequest{method: http.MethodPost, path: "/", body: "Action=GetCallerIdentity&Version=2011-06-15",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}},
		{"beanstalk-describe-environments", query(Beanstalk, "Action=DescribeEnvironments&Version=2010-12-01&EnvironmentNames.member.1=backend-production")},
		{"beanstalk-update-environment-missing", query(Beanstalk, "Action=UpdateEnvironment&Version=2010-12-01&EnvironmentName=nope&VersionLabel=v1")},
		{"ecr-create-repository", ecr("CreateRepository", `{"repositoryName":"workers"}`)},
		{"ecr-describe-repositories-missing", ecr("DescribeRepositories", `{"repositoryNames":["nope"]}`)},
		{"lambda-get-function", rawRequest{service: Lambda, method: http.MethodGet, path: "/2015-03-31/functions/api"}},
		{"lambda-get-function-missing", rawRequest{service: Lambda, method: http.MethodGet, path: "/2015-03-31/functions/nope"}},
		{"s3-get-object-missing", rawRequest{service: S3, method: http.MethodGet, path: "/elasticbeanstalk-eu-west-1-123456789012/nope.zip?x-id=GetObject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.req.do(t, f)
			path := filepath.Join("testdata", "wire", tt.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// rawRequest is a raw request to the fake, signed-looking for service.
type rawRequest struct {
	service      string
	method, path string
	header       http.Header
	body         string
}

// do sends r and returns the answer as text: status, the headers that
// carry meaning, body, with what changes from run to run replaced.
func (r rawRequest) do(t *testing.T, f *Fake) string {
	t.Helper()
	req, err := http.NewRequest(r.method, f.Endpoint()+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.service != "" {
		req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/20260101/%s/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000",
			AccessKeyID, f.Region(), r.service))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	var names []string
	for k := range resp.Header {
		switch k {
		case "Content-Type", "X-Amzn-Errortype", "Retry-After", "Etag":
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\n", k, resp.Header.Get(k))
	}
	fmt.Fprintf(&b, "\n%s\n", body)
	return normalize(b.String(), f)
}

var (
	isoTimes   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d{4})`)
	epochTimes = regexp.MustCompile(`"(createdAt|expiresAt)":\d+(\.\d+)?`)
	uuids      = regexp.MustCompile(`[0-9a-f]{8}-5eed-4a05-8000-[0-9a-f]{12}`)
)

func normalize(s string, f *Fake) string {
	s = strings.ReplaceAll(s, f.RegistryHost(), "127.0.0.1:REGISTRY")
	s = isoTimes.ReplaceAllString(s, "TIME")
	s = epochTimes.ReplaceAllString(s, `"$1":EPOCH`)
	s = uuids.ReplaceAllString(s, "UUID")
	return s
}
