package awstest

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bucket is an S3 bucket and its objects.
type bucket struct {
	name     string
	location string // "" for us-east-1
	created  time.Time
	objects  map[string]*object
}

type object struct {
	data        []byte
	contentType string
	etag        string // with its quotes
	modified    time.Time
	checksums   map[string]string // header name → value, as given by PutObject
	metadata    map[string]string // x-amz-meta-*
}

// PutObject stores data at bucket/key as PutObject would, creating the
// bucket if needed, for tests that start with an object in place.
func (f *Fake) PutObject(bucketName, key string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[bucketName]
	if b == nil {
		b = &bucket{name: bucketName, location: f.locationConstraint(), created: time.Now(), objects: map[string]*object{}}
		f.buckets[bucketName] = b
	}
	b.objects[key] = newObject(data, "binary/octet-stream", time.Now())
	f.notifyLocked()
}

// Object returns the content of the object at bucket/key.
func (f *Fake) Object(bucketName, key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[bucketName]
	if b == nil || b.objects[key] == nil {
		return nil, false
	}
	return bytes.Clone(b.objects[key].data), true
}

// Objects returns the keys of bucket's objects, sorted; nil if there is
// no such bucket.
func (f *Fake) Objects(bucketName string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[bucketName]
	if b == nil {
		return nil
	}
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Buckets returns the names of the buckets, sorted.
func (f *Fake) Buckets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.buckets))
	for n := range f.buckets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// locationConstraint is the LocationConstraint of the fake's region, ""
// for us-east-1.
func (f *Fake) locationConstraint() string {
	if f.region == "us-east-1" {
		return ""
	}
	return f.region
}

func newObject(data []byte, contentType string, at time.Time) *object {
	sum := md5.Sum(data)
	return &object{
		data:        data,
		contentType: contentType,
		etag:        `"` + hex.EncodeToString(sum[:]) + `"`,
		modified:    at.UTC().Truncate(time.Second),
	}
}

// routeS3 finds the S3 operation of req, whose bucket is in the path
// (/bucket/key): the SDK addresses buckets so at an endpoint that is an IP
// address, as Endpoint is. (At a host name, such as localhost, it puts
// the bucket in the host name unless told UsePathStyle.)
func routeS3(req *request) {
	r := req.r
	labels := pathLabels(r, "")
	// The key keeps its slashes.
	if len(labels) > 1 {
		labels = []string{labels[0], strings.Join(labels[1:], "/")}
	}
	req.labels = labels
	req.params = map[string]any{}
	if len(labels) > 0 {
		req.params["Bucket"] = labels[0]
	}
	if len(labels) > 1 {
		req.params["Key"] = labels[1]
	}
	q := r.URL.Query()
	switch {
	case len(labels) == 0:
		req.op = map[string]string{http.MethodGet: "ListBuckets"}[r.Method]
	case len(labels) == 1:
		req.op = map[string]string{
			http.MethodPut: "CreateBucket", http.MethodHead: "HeadBucket",
			http.MethodGet: "ListObjects", http.MethodDelete: "DeleteBucket",
		}[r.Method]
	default:
		req.op = map[string]string{
			http.MethodPut: "PutObject", http.MethodHead: "HeadObject",
			http.MethodGet: "GetObject", http.MethodDelete: "DeleteObject",
		}[r.Method]
		if r.Method == http.MethodPut {
			req.params["ContentLength"] = decodedLength(r, len(req.body))
			if ct := r.Header.Get("Content-Type"); ct != "" {
				req.params["ContentType"] = ct
			}
		}
	}
	// The SDK names the operation in x-id where the method and path do
	// not (ListObjectsV2, CopyObject...).
	if id := q.Get("x-id"); id != "" {
		req.op = id
	} else if q.Get("list-type") == "2" {
		req.op = "ListObjectsV2"
	}
	if req.op == "" {
		req.op = r.Method + " " + r.URL.Path
	}
}

func (f *Fake) serveS3(w http.ResponseWriter, req *request) *apiError {
	switch req.op {
	case "CreateBucket":
		return f.createBucket(w, req)
	case "PutObject":
		if req.r.Header.Get("X-Amz-Copy-Source") != "" {
			return notModeled(S3, "CopyObject")
		}
		return f.putObject(w, req)
	case "HeadObject", "GetObject":
		return f.getObject(w, req)
	default:
		return notModeled(S3, req.op)
	}
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

type createBucketConfiguration struct {
	LocationConstraint string `xml:"LocationConstraint"`
}

func (f *Fake) createBucket(w http.ResponseWriter, req *request) *apiError {
	name := req.labels[0]
	if !bucketName.MatchString(name) || strings.Contains(name, "..") {
		return &apiError{status: http.StatusBadRequest, code: "InvalidBucketName",
			message: "The specified bucket is not valid.", fields: [][2]string{{"BucketName", name}}}
	}
	var conf createBucketConfiguration
	if len(bytes.TrimSpace(req.body)) > 0 {
		if err := xml.Unmarshal(req.body, &conf); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "MalformedXML",
				message: "The XML you provided was not well-formed or did not validate against our published schema"}
		}
	}
	want := f.locationConstraint()
	switch {
	case conf.LocationConstraint == "" && want != "":
		return &apiError{status: http.StatusBadRequest, code: "IllegalLocationConstraintException",
			message: "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to."}
	case conf.LocationConstraint != want:
		return &apiError{status: http.StatusBadRequest, code: "IllegalLocationConstraintException",
			message: fmt.Sprintf("The %s location constraint is incompatible for the region specific endpoint this request was sent to.", conf.LocationConstraint)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.buckets[name]; ok {
		// us-east-1 answers 200 to the owner's repeated CreateBucket, for
		// compatibility with its oldest clients; other regions refuse.
		if want != "" {
			return &apiError{status: http.StatusConflict, code: "BucketAlreadyOwnedByYou",
				message: "Your previous request to create the named bucket succeeded and you already own it.",
				fields:  [][2]string{{"BucketName", name}}}
		}
	} else {
		f.buckets[name] = &bucket{name: name, location: want, created: time.Now(), objects: map[string]*object{}}
	}
	w.Header().Set("Location", "/"+name)
	w.Header().Set("X-Amz-Request-Id", req.id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// checksumHeaders are the checksums S3 verifies and returns, with the
// hash each is made of. CRC64NVME is not among them: the standard library
// has no such hash, so the fake stores it unverified.
var checksumHeaders = map[string]func() hash.Hash{
	"X-Amz-Checksum-Crc32":  func() hash.Hash { return crc32.NewIEEE() },
	"X-Amz-Checksum-Crc32c": func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"X-Amz-Checksum-Sha1":   sha1.New,
	"X-Amz-Checksum-Sha256": sha256.New,
}

func (f *Fake) putObject(w http.ResponseWriter, req *request) *apiError {
	data, trailers, err := decodePayload(req.r, req.body)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "IncompleteBody", message: "The request body terminated unexpectedly"}
	}
	req.params["ContentLength"] = len(data)
	checksums := map[string]string{}
	for _, h := range []http.Header{req.r.Header, trailers} {
		for name := range h {
			if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Amz-Checksum-") && name != "X-Amz-Checksum-Type" {
				checksums[http.CanonicalHeaderKey(name)] = h.Get(name)
			}
		}
	}
	for name, want := range checksums {
		newHash, ok := checksumHeaders[name]
		if !ok {
			continue
		}
		h := newHash()
		h.Write(data)
		if base64.StdEncoding.EncodeToString(h.Sum(nil)) != want {
			algo := strings.ToUpper(strings.TrimPrefix(name, "X-Amz-Checksum-"))
			return &apiError{status: http.StatusBadRequest, code: "BadDigest",
				message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", algo)}
		}
	}
	if md5b64 := req.r.Header.Get("Content-Md5"); md5b64 != "" {
		sum := md5.Sum(data)
		if base64.StdEncoding.EncodeToString(sum[:]) != md5b64 {
			return &apiError{status: http.StatusBadRequest, code: "BadDigest",
				message: "The Content-MD5 you specified did not match what we received."}
		}
	}
	bucketName, key := req.labels[0], req.labels[1]
	ct := req.r.Header.Get("Content-Type")
	if ct == "" {
		ct = "binary/octet-stream"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[bucketName]
	if b == nil {
		return noSuchBucket(bucketName)
	}
	o := newObject(data, ct, req.at)
	o.checksums = checksums
	o.metadata = map[string]string{}
	for name := range req.r.Header {
		if strings.HasPrefix(name, "X-Amz-Meta-") {
			o.metadata[name] = req.r.Header.Get(name)
		}
	}
	b.objects[key] = o
	w.Header().Set("ETag", o.etag)
	for name, v := range checksums {
		w.Header().Set(name, v)
	}
	w.Header().Set("X-Amz-Request-Id", req.id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (f *Fake) getObject(w http.ResponseWriter, req *request) *apiError {
	bucketName, key := req.labels[0], req.labels[1]
	f.mu.Lock()
	b := f.buckets[bucketName]
	var o *object
	if b != nil {
		o = b.objects[key]
	}
	f.mu.Unlock()
	switch {
	case b == nil:
		return noSuchBucket(bucketName)
	case o == nil:
		return &apiError{status: http.StatusNotFound, code: "NoSuchKey",
			message: "The specified key does not exist.", fields: [][2]string{{"Key", key}}}
	}
	h := w.Header()
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("Content-Type", o.contentType)
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Amz-Request-Id", req.id)
	for name, v := range o.metadata {
		h.Set(name, v)
	}
	if req.r.Header.Get("X-Amz-Checksum-Mode") == "ENABLED" {
		for name, v := range o.checksums {
			h.Set(name, v)
		}
	}
	w.WriteHeader(http.StatusOK)
	if req.op == "GetObject" {
		w.Write(o.data)
	}
	return nil
}

func noSuchBucket(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "NoSuchBucket",
		message: "The specified bucket does not exist", fields: [][2]string{{"BucketName", name}}}
}

// decodedLength is the length of the object a PutObject carries.
func decodedLength(r *http.Request, bodyLen int) int {
	if n, err := strconv.Atoi(r.Header.Get("X-Amz-Decoded-Content-Length")); err == nil {
		return n
	}
	return bodyLen
}

// decodePayload returns the object a PutObject carries: the body, or the
// data of its aws-chunked encoding, which the SDK uses to send a checksum
// as a trailer, with those trailers.
func decodePayload(r *http.Request, body []byte) ([]byte, http.Header, error) {
	chunked := strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") ||
		strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-")
	if !chunked {
		return body, nil, nil
	}
	br := bufio.NewReader(bytes.NewReader(body))
	var data []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, nil, err
		}
		sizeHex, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		size, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || size < 0 || size > maxBody {
			return nil, nil, errors.New("bad chunk size")
		}
		if size == 0 {
			break
		}
		chunk := make([]byte, size)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, nil, err
		}
		data = append(data, chunk...)
		if crlf, err := br.ReadString('\n'); err != nil || strings.TrimRight(crlf, "\r\n") != "" {
			return nil, nil, errors.New("chunk not followed by CRLF")
		}
	}
	trailers := http.Header{}
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.EqualFold(k, "x-amz-trailer-signature") {
			trailers.Set(k, strings.TrimSpace(v))
		}
		if err != nil {
			break
		}
	}
	if n, err := strconv.Atoi(r.Header.Get("X-Amz-Decoded-Content-Length")); err == nil && n != len(data) {
		return nil, nil, fmt.Errorf("decoded %d bytes, header says %d", len(data), n)
	}
	return data, trailers, nil
}
