package awstest_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

func TestS3Objects(t *testing.T) {
	fake, c := setup(t)
	ctx := ctx(t)

	_, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("slipway-bundles")})
	apiErr := wantAPIError(t, err, "IllegalLocationConstraintException")
	if !strings.Contains(apiErr.ErrorMessage(), "unspecified location constraint") {
		t.Errorf("message %q", apiErr.ErrorMessage())
	}
	_, err = c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("slipway-bundles"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
	wantAPIError(t, err, "IllegalLocationConstraintException")
	create := &s3.CreateBucketInput{Bucket: aws.String("slipway-bundles"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(fake.Region())}}
	_, err = c.s3.CreateBucket(ctx, create)
	must(t, err)
	_, err = c.s3.CreateBucket(ctx, create)
	wantAPIError(t, err, "BucketAlreadyOwnedByYou")
	_, err = c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Not_A_Bucket"), CreateBucketConfiguration: create.CreateBucketConfiguration})
	wantAPIError(t, err, "InvalidBucketName")

	bundle := []byte("PK\x03\x04 a source bundle")
	put, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("backend/3f2a9c1.zip"),
		Body: bytes.NewReader(bundle), ContentType: aws.String("application/zip")})
	must(t, err)
	if aws.ToString(put.ETag) == "" {
		t.Error("PutObject answered no ETag")
	}
	head, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("backend/3f2a9c1.zip")})
	must(t, err)
	if aws.ToInt64(head.ContentLength) != int64(len(bundle)) || aws.ToString(head.ETag) != aws.ToString(put.ETag) ||
		aws.ToString(head.ContentType) != "application/zip" || head.LastModified == nil {
		t.Errorf("HeadObject = length %d, ETag %s, type %s, modified %v", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag),
			aws.ToString(head.ContentType), head.LastModified)
	}
	get, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("backend/3f2a9c1.zip")})
	must(t, err)
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	must(t, err)
	if !bytes.Equal(got, bundle) {
		t.Errorf("GetObject = %q, want %q", got, bundle)
	}
	if data, ok := fake.Object("slipway-bundles", "backend/3f2a9c1.zip"); !ok || !bytes.Equal(data, bundle) {
		t.Errorf("fake.Object = %q, %v", data, ok)
	}

	_, err = c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("nothing.zip")})
	var noSuchKey *types.NoSuchKey
	if !errors.As(err, &noSuchKey) {
		t.Errorf("GetObject of a missing key: %v, want NoSuchKey", err)
	}
	_, err = c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("slipway-bundles"), Key: aws.String("nothing.zip")})
	var notFound *types.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("HeadObject of a missing key: %v, want NotFound", err)
	}
	_, err = c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k"), Body: bytes.NewReader(bundle)})
	wantAPIError(t, err, "NoSuchBucket")
	_, err = c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k")})
	wantAPIError(t, err, "NoSuchBucket")

	if keys := fake.Objects("slipway-bundles"); len(keys) == 0 || keys[0] != "backend/3f2a9c1.zip" {
		t.Errorf("Objects = %q", keys)
	}
	put1 := fake.CallsTo(awstest.S3, "PutObject")[0]
	if put1.Params["Bucket"] != "slipway-bundles" || put1.Params["Key"] != "backend/3f2a9c1.zip" ||
		put1.Params["ContentLength"] != len(bundle) || put1.Params["ContentType"] != "application/zip" {
		t.Errorf("PutObject recorded with %v", put1.Params)
	}
}

// TestS3BadDigest checks that the fake verifies a checksum as S3 does.
func TestS3BadDigest(t *testing.T) {
	fake, c := setup(t)
	fake.PutObject("b1", "seed", nil)
	_, err := c.s3.PutObject(ctx(t), &s3.PutObjectInput{Bucket: aws.String("b1"), Key: aws.String("k"),
		Body: strings.NewReader("data"), ChecksumCRC32: aws.String("AAAAAA==")})
	wantAPIError(t, err, "BadDigest")
	if _, ok := fake.Object("b1", "k"); ok {
		t.Error("an object with a bad checksum was stored")
	}
}

func TestS3USEast1(t *testing.T) {
	_, c := setup(t, awstest.WithRegion("us-east-1"))
	for range 2 { // us-east-1 answers a repeated CreateBucket with 200
		_, err := c.s3.CreateBucket(ctx(t), &s3.CreateBucketInput{Bucket: aws.String("slipway-bundles")})
		must(t, err)
	}
}
