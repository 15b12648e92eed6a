package awstest_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/slipway-ci/slipway/deploy/aws/awstest"
)

func TestECRRepositories(t *testing.T) {
	fake, c := setup(t)
	ctx := ctx(t)

	out, err := c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("slipway/backend")})
	must(t, err)
	r := out.Repository
	wantURI := fake.RegistryHost() + "/slipway/backend"
	if aws.ToString(r.RepositoryUri) != wantURI || aws.ToString(r.RegistryId) != awstest.AccountID ||
		aws.ToString(r.RepositoryArn) != "arn:aws:ecr:"+fake.Region()+":"+awstest.AccountID+":repository/slipway/backend" ||
		r.ImageTagMutability != types.ImageTagMutabilityMutable || r.CreatedAt == nil || time.Since(*r.CreatedAt) > time.Minute {
		t.Errorf("CreateRepository = %+v", r)
	}
	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("slipway/backend")})
	var exists *types.RepositoryAlreadyExistsException
	if !errors.As(err, &exists) || exists.ErrorMessage() != "The repository with name 'slipway/backend' already exists in the registry with id '123456789012'" {
		t.Errorf("CreateRepository again: %v", err)
	}
	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("Backend")})
	var invalid *types.InvalidParameterException
	if !errors.As(err, &invalid) {
		t.Errorf("CreateRepository of an invalid name: %v", err)
	}
	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("workers"), ImageTagMutability: types.ImageTagMutabilityImmutable})
	must(t, err)

	all, err := c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	must(t, err)
	if len(all.Repositories) != 2 || aws.ToString(all.Repositories[0].RepositoryName) != "slipway/backend" ||
		all.Repositories[1].ImageTagMutability != types.ImageTagMutabilityImmutable {
		t.Errorf("DescribeRepositories = %+v", all.Repositories)
	}
	// The SDK's paginator walks the pages.
	var names []string
	pages := ecr.NewDescribeRepositoriesPaginator(c.ecr, &ecr.DescribeRepositoriesInput{MaxResults: aws.Int32(1)})
	for pages.HasMorePages() {
		p, err := pages.NextPage(ctx)
		must(t, err)
		for _, r := range p.Repositories {
			names = append(names, aws.ToString(r.RepositoryName))
		}
	}
	if strings.Join(names, ",") != "slipway/backend,workers" {
		t.Errorf("pages of DescribeRepositories = %q", names)
	}

	_, err = c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"workers", "frontend"}})
	var notFound *types.RepositoryNotFoundException
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "The repository with name 'frontend' does not exist in the registry with id '123456789012'" {
		t.Errorf("DescribeRepositories of a missing repository: %v", err)
	}
	_, err = c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("frontend")})
	if !errors.As(err, &notFound) {
		t.Errorf("DescribeImages of a missing repository: %v", err)
	}

	if repos := fake.Repositories(); len(repos) != 2 || repos[0].URI != wantURI || repos[1].TagMutability != "IMMUTABLE" {
		t.Errorf("fake.Repositories = %+v", repos)
	}
	calls := fake.CallsTo(awstest.ECR, "CreateRepository")
	if len(calls) != 4 || calls[0].Params["repositoryName"] != "slipway/backend" || calls[1].ErrorCode != "RepositoryAlreadyExistsException" {
		t.Errorf("CreateRepository calls = %+v", calls)
	}
}

func TestECRAuthorizationToken(t *testing.T) {
	fake, c := setup(t)
	out, err := c.ecr.GetAuthorizationToken(ctx(t), &ecr.GetAuthorizationTokenInput{})
	must(t, err)
	if len(out.AuthorizationData) != 1 {
		t.Fatalf("AuthorizationData = %+v", out.AuthorizationData)
	}
	d := out.AuthorizationData[0]
	token, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	must(t, err)
	if string(token) != "AWS:"+fake.RegistryPassword() {
		t.Errorf("token decodes to %q", token)
	}
	if aws.ToString(d.ProxyEndpoint) != "http://"+fake.RegistryHost() {
		t.Errorf("proxyEndpoint = %s", aws.ToString(d.ProxyEndpoint))
	}
	if d.ExpiresAt == nil || time.Until(*d.ExpiresAt) < 11*time.Hour {
		t.Errorf("expiresAt = %v, want in 12 hours", d.ExpiresAt)
	}
}

// TestECRImages pushes images through the registry API (no Docker Engine)
// and reads them back through ECR.
func TestECRImages(t *testing.T) {
	fake, c := setup(t)
	fake.RequireRegistry()
	ctx := ctx(t)
	fake.AddRepository("backend")

	empty, err := c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("backend")})
	must(t, err)
	if len(empty.ImageDetails) != 0 {
		t.Errorf("DescribeImages of an empty repository = %+v", empty.ImageDetails)
	}

	d1 := fake.PushImage("backend", "3f2a9c1")
	d2 := fake.PushImage("backend", "8b7e6d5")
	if d1 == d2 || !strings.HasPrefix(d1, "sha256:") {
		t.Fatalf("digests %s and %s", d1, d2)
	}
	if again := fake.PushImage("backend", "3f2a9c1"); again != d1 {
		t.Errorf("the same tag pushed again has digest %s, want %s", again, d1)
	}

	all, err := c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("backend")})
	must(t, err)
	if len(all.ImageDetails) != 2 {
		t.Fatalf("DescribeImages = %+v", all.ImageDetails)
	}
	byTag := map[string]types.ImageDetail{}
	for _, d := range all.ImageDetails {
		for _, tag := range d.ImageTags {
			byTag[tag] = d
		}
	}
	img := byTag["3f2a9c1"]
	if aws.ToString(img.ImageDigest) != d1 || aws.ToString(img.RepositoryName) != "backend" || aws.ToString(img.RegistryId) != awstest.AccountID ||
		aws.ToInt64(img.ImageSizeInBytes) <= 0 || img.ImagePushedAt == nil || time.Since(*img.ImagePushedAt) > time.Minute ||
		aws.ToString(img.ImageManifestMediaType) != "application/vnd.docker.distribution.manifest.v2+json" ||
		aws.ToString(img.ArtifactMediaType) != "application/vnd.docker.container.image.v1+json" {
		t.Errorf("image 3f2a9c1 = %+v", img)
	}

	byID, err := c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("backend"),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("8b7e6d5")}, {ImageDigest: aws.String(d1)}}})
	must(t, err)
	if len(byID.ImageDetails) != 2 || aws.ToString(byID.ImageDetails[0].ImageDigest) != d2 || aws.ToString(byID.ImageDetails[1].ImageDigest) != d1 {
		t.Errorf("DescribeImages by ID = %+v", byID.ImageDetails)
	}
	_, err = c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("backend"),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("0000000")}}})
	var notFound *types.ImageNotFoundException
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "The image with imageId {imageDigest:null, imageTag:'0000000'} does not exist within the repository with name 'backend' in the registry with id '123456789012'" {
		t.Errorf("DescribeImages of a missing tag: %v", err)
	}

	batch, err := c.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("backend"),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String("3f2a9c1")}, {ImageTag: aws.String("0000000")}}})
	must(t, err)
	if len(batch.Images) != 1 || aws.ToString(batch.Images[0].ImageId.ImageDigest) != d1 || aws.ToString(batch.Images[0].ImageId.ImageTag) != "3f2a9c1" ||
		!strings.Contains(aws.ToString(batch.Images[0].ImageManifest), `"schemaVersion":2`) {
		t.Errorf("BatchGetImage images = %+v", batch.Images)
	}
	if len(batch.Failures) != 1 || batch.Failures[0].FailureCode != types.ImageFailureCodeImageNotFound ||
		aws.ToString(batch.Failures[0].FailureReason) != "Requested image not found" || aws.ToString(batch.Failures[0].ImageId.ImageTag) != "0000000" {
		t.Errorf("BatchGetImage failures = %+v", batch.Failures)
	}

	if images := fake.Images("backend"); len(images) != 2 || images[0].Digest != d1 || images[0].Tags[0] != "3f2a9c1" {
		t.Errorf("fake.Images = %+v", images)
	}
}

// TestECRRegistryRefusals checks that the registry refuses what ECR
// refuses: anonymous pulls, a push to a repository never created, a tag
// pushed again to an immutable repository.
func TestECRRegistryRefusals(t *testing.T) {
	fake, c := setup(t)
	fake.RequireRegistry()
	ctx := ctx(t)

	resp, err := http.Get("http://" + fake.RegistryHost() + "/v2/")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous /v2/ = %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	_, err = awstest.PushImageErr(fake, "never-created", "v1")
	if err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN") || !strings.Contains(err.Error(), "The repository with name 'never-created' does not exist") {
		t.Errorf("push to a missing repository: %v", err)
	}

	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("pinned"), ImageTagMutability: types.ImageTagMutabilityImmutable})
	must(t, err)
	fake.PushImage("pinned", "v1")
	_, err = awstest.PushImageErr(fake, "pinned", "v1")
	if err == nil || !strings.Contains(err.Error(), "TAG_INVALID") || !strings.Contains(err.Error(), "cannot be overwritten because the repository is immutable") {
		t.Errorf("push of a tag again to an immutable repository: %v", err)
	}
	fake.PushImage("pinned", "v2")
}
