package awstest_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/slipway-ci/slipway/executors/docker/dockertest"
)

// TestDockerPushShowsInECR builds a tiny image offline with the Docker
// Engine, logs in with ECR's authorization token and pushes it to the
// repositoryUri, as slipway's deploy does, then finds it in DescribeImages
// with the digest the engine reported.
func TestDockerPushShowsInECR(t *testing.T) {
	fake, c := setup(t)
	fake.RequireRegistry()
	cli := dockertest.RequireDocker(t)
	ctx := ctx(t)

	repo, err := c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("slipway/backend")})
	must(t, err)
	tok, err := c.ecr.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	must(t, err)
	auth := tok.AuthorizationData[0]
	userPass, err := base64.StdEncoding.DecodeString(aws.ToString(auth.AuthorizationToken))
	must(t, err)
	user, pass, _ := strings.Cut(string(userPass), ":")
	authConfig := registry.AuthConfig{Username: user, Password: pass, ServerAddress: aws.ToString(auth.ProxyEndpoint)}
	registryAuth, err := registry.EncodeAuthConfig(authConfig)
	must(t, err)
	// docker login, as a deploy may check its credentials first.
	login, err := cli.RegistryLogin(ctx, authConfig)
	must(t, err)
	if login.Status != "Login Succeeded" {
		t.Errorf("RegistryLogin = %+v", login)
	}
	bad := authConfig
	bad.Password = "not-the-token"
	if _, err := cli.RegistryLogin(ctx, bad); err == nil {
		t.Error("RegistryLogin with a wrong password succeeded")
	}

	const tag = "3f2a9c1"
	ref := aws.ToString(repo.Repository.RepositoryUri) + ":" + tag
	importImage(ctx, t, cli, ref)

	digest, err := push(ctx, cli, ref, registryAuth)
	must(t, err)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("the engine reported digest %q", digest)
	}

	out, err := c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("slipway/backend"),
		ImageIds: []types.ImageIdentifier{{ImageTag: aws.String(tag)}}})
	must(t, err)
	if len(out.ImageDetails) != 1 || aws.ToString(out.ImageDetails[0].ImageDigest) != digest || !slices.Contains(out.ImageDetails[0].ImageTags, tag) {
		t.Errorf("DescribeImages = %+v, want %s tagged %s", out.ImageDetails, digest, tag)
	}
	inspect, err := cli.ImageInspect(ctx, ref)
	must(t, err)
	if want := aws.ToString(repo.Repository.RepositoryUri) + "@" + digest; !slices.Contains(inspect.RepoDigests, want) {
		t.Errorf("the engine's RepoDigests %q lack %s", inspect.RepoDigests, want)
	}

	// The engine is refused what ECR refuses: a push without credentials,
	// and a push to a repository that was never created.
	if _, err := push(ctx, cli, ref, ""); err == nil || !strings.Contains(err.Error(), "basic auth") {
		t.Errorf("push without credentials: %v", err)
	}
	other := fake.RegistryHost() + "/never-created:" + tag
	must(t, cli.ImageTag(ctx, ref, other))
	t.Cleanup(func() { cli.ImageRemove(context.Background(), other, image.RemoveOptions{Force: true}) })
	if _, err := push(ctx, cli, other, registryAuth); err == nil || !strings.Contains(err.Error(), "does not exist in the registry") {
		t.Errorf("push to a missing repository: %v", err)
	}
}

// importImage imports a one-file image as ref, FROM scratch, and removes it
// when the test ends.
func importImage(ctx context.Context, t *testing.T, cli client.APIClient, ref string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("slipway " + t.Name() + " " + time.Now().String() + "\n")
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()}))
	_, err := tw.Write(content)
	must(t, err)
	must(t, tw.Close())
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{})
	must(t, err)
	defer rc.Close()
	must(t, jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil))
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
}

// push pushes ref and returns the digest the engine reports.
func push(ctx context.Context, cli client.APIClient, ref, registryAuth string) (string, error) {
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: registryAuth})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var digest string
	err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, func(m jsonmessage.JSONMessage) {
		var aux struct{ Digest string }
		if m.Aux != nil && json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
			digest = aux.Digest
		}
	})
	return digest, err
}
