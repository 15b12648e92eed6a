package awstest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDecodeAWSChunked decodes the aws-chunked body the SDK sends over
// TLS for a body it cannot rewind: unsigned chunks, then the checksum as
// a trailer.
func TestDecodeAWSChunked(t *testing.T) {
	body := "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
	r := httptest.NewRequest(http.MethodPut, "/b/k", strings.NewReader(body))
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	r.Header.Set("X-Amz-Decoded-Content-Length", "11")
	r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	data, trailers, err := decodePayload(r, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, []byte("hello world")) {
		t.Errorf("data = %q", data)
	}
	if got := trailers.Get("X-Amz-Checksum-Crc32"); got != "DUoRhQ==" {
		t.Errorf("trailer = %q", got)
	}

	r.Header.Set("X-Amz-Decoded-Content-Length", "12")
	if _, _, err := decodePayload(r, []byte(body)); err == nil {
		t.Error("a body shorter than its decoded length was taken")
	}
}

// TestPutObjectAWSChunked stores an aws-chunked PutObject and checks its
// trailing checksum, refusing one that does not match.
func TestPutObjectAWSChunked(t *testing.T) {
	f := New(t)
	f.PutObject("b", "seed", nil)
	put := func(crc string) int {
		body := "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n"
		req, err := http.NewRequest(http.MethodPut, f.Endpoint()+"/b/k?x-id=PutObject", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+AccessKeyID+"/20260101/"+f.Region()+
			"/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000")
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		req.Header.Set("X-Amz-Decoded-Content-Length", "11")
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("AAAAAA=="); code != http.StatusBadRequest {
		t.Errorf("a wrong trailing checksum answered %d, want 400", code)
	}
	if _, ok := f.Object("b", "k"); ok {
		t.Error("an object with a wrong checksum was stored")
	}
	if code := put("DUoRhQ=="); code != http.StatusOK {
		t.Fatalf("PutObject answered %d", code)
	}
	if got, _ := f.Object("b", "k"); string(got) != "hello world" {
		t.Errorf("object = %q", got)
	}
}
