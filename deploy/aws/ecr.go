package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/docker/docker/api/types/registry"

	"github.com/slipway-ci/slipway/internal/lazyre"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// ecrPush builds the job's image (or takes one an earlier step built),
// and pushes it to an ECR repository under the commit's tag and the extra
// tags. An image already in the repository under the tag is neither
// built nor pushed again; on a rollback, the image the release recorded
// must still be there, and nothing is built.
func (s *step) ecrPush(ctx context.Context) (engine.Outputs, error) {
	p := s.p
	repo, tag := p.required("repo"), p.required("tag")
	extra := p.list("extra-tags")
	buildPath, dockerfile := p.str("path"), p.str("dockerfile")
	target, src := p.str("target"), p.str("image")
	createRepo := p.flag("create-repo", false)
	args := s.buildArgs(p.m["build-args"])
	for _, t := range append([]string{tag}, extra...) {
		if t != "" && !validTag.MatchString(t) {
			p.errs = append(p.errs, fmt.Sprintf("%q is not an image tag", t))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if buildPath == "" {
		buildPath = "."
	}
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	sess, err := s.session(ctx, p.str("region"))
	if err != nil {
		return nil, err
	}
	api := sess.ecr()
	uri, err := s.repository(ctx, api, repo, createRepo)
	if err != nil {
		return nil, err
	}
	out := func(ref, digest string) engine.Outputs {
		return engine.Outputs{ECRKey(repo, "uri"): ref, ECRKey(repo, "digest"): digest}
	}

	if s.rollingBack() {
		ref, _ := s.restore(ECRKey(repo, "uri"))
		digest, ok := s.restore(ECRKey(repo, "digest"))
		if ok {
			if ref == "" {
				ref = uri + ":" + tag
			}
			found, err := imageByID(ctx, api, repo, types.ImageIdentifier{ImageDigest: aws.String(digest)})
			if err != nil {
				return nil, err
			}
			if found == "" {
				return nil, fmt.Errorf("rollback: the image %s@%s that the release recorded is no longer in ECR; "+
					"nothing was rebuilt: deploy the commit with /deploy to build it again", uri, digest)
			}
			s.logf("Rollback: %s (%s), recorded by the release, is still in ECR; nothing is built or pushed", ref, digest)
			return out(ref, digest), nil
		}
		s.logf("Rollback: the release recorded no image of %s; looking for %s:%s", repo, uri, tag)
	}

	ref := uri + ":" + tag
	digest, err := imageByID(ctx, api, repo, types.ImageIdentifier{ImageTag: aws.String(tag)})
	if err != nil {
		return nil, err
	}
	if digest != "" {
		s.logf("%s is already in ECR (%s): not built or pushed again", ref, digest)
		if len(extra) > 0 {
			s.logf("The extra tags %s were left where they are: the image was not pushed again", strings.Join(extra, ", "))
		}
		return out(ref, digest), nil
	}
	if s.r.docker == nil {
		return nil, fmt.Errorf("%s is not in ECR, and this slipway has no Docker engine to build and push it", ref)
	}

	auth, host, err := registryAuth(ctx, api)
	if err != nil {
		return nil, err
	}
	refs := []string{ref}
	for _, t := range extra {
		refs = append(refs, uri+":"+t)
	}
	if src != "" {
		if err := s.tagImage(ctx, src, refs); err != nil {
			return nil, err
		}
	} else {
		s.logf("Building %s from %s (Dockerfile %s)", ref, buildPath, dockerfile)
		labels := map[string]string{}
		if sha := s.env("CIRCLE_SHA1"); sha != "" {
			labels["org.opencontainers.image.revision"] = sha
		}
		id, err := s.build(ctx, buildSpec{context: buildPath, dockerfile: dockerfile, args: args, target: target, tags: refs, labels: labels,
			auth: map[string]registry.AuthConfig{host: auth}})
		if err != nil {
			return nil, err
		}
		s.logf("Built %s", shortID(id))
	}
	encoded, err := registry.EncodeAuthConfig(auth)
	if err != nil {
		return nil, fmt.Errorf("registry auth: %w", err)
	}
	pushed := ""
	for _, r := range refs {
		s.logf("Pushing %s", r)
		d, err := s.push(ctx, r, encoded)
		if err != nil {
			return nil, err
		}
		if r == ref {
			pushed = d
		}
	}
	// ECR says what it holds under the tag: that is what deploys pull.
	digest, err = imageByID(ctx, api, repo, types.ImageIdentifier{ImageTag: aws.String(tag)})
	if err != nil {
		return nil, err
	}
	if digest == "" {
		return nil, fmt.Errorf("%s was pushed (%s) but ECR does not list it", ref, pushed)
	}
	s.logf("Pushed %s (%s)", ref, digest)
	return out(ref, digest), nil
}

// validTag is Docker's grammar of a tag.
var validTag = lazyre.New(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// buildArgs reads build-args: KEY=VALUE items, one a line, or separated
// by commas when on one line; a KEY alone takes its value from the job's
// environment, as docker build --build-arg does, so that secrets need
// not be written in the config.
func (s *step) buildArgs(v string) map[string]*string {
	sep := ","
	if strings.Contains(v, "\n") {
		sep = "\n"
	}
	args := map[string]*string{}
	for _, item := range strings.Split(v, sep) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			e, set := s.run.Env[k]
			if !set {
				continue
			}
			val = e
		}
		args[strings.TrimSpace(k)] = aws.String(val)
	}
	return args
}

// repository returns the URI of repository repo, creating it when asked
// to.
func (s *step) repository(ctx context.Context, api *ecr.Client, repo string, create bool) (string, error) {
	out, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{repo}})
	if err == nil && len(out.Repositories) == 1 {
		return aws.ToString(out.Repositories[0].RepositoryUri), nil
	}
	var missing *types.RepositoryNotFoundException
	if err != nil && !errors.As(err, &missing) {
		return "", fmt.Errorf("ECR: describe repository %s: %w", repo, err)
	}
	if !create {
		return "", fmt.Errorf("ECR has no repository %s: create it, or set create-repo: true", repo)
	}
	created, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)})
	var exists *types.RepositoryAlreadyExistsException
	switch {
	case errors.As(err, &exists):
		// Made meanwhile by another job.
		return s.repository(ctx, api, repo, false)
	case err != nil:
		return "", fmt.Errorf("ECR: create repository %s: %w", repo, err)
	}
	s.logf("Created the ECR repository %s", repo)
	return aws.ToString(created.Repository.RepositoryUri), nil
}

// imageByID returns the digest of the image id names in repo; "" when
// there is none.
func imageByID(ctx context.Context, api *ecr.Client, repo string, id types.ImageIdentifier) (string, error) {
	out, err := api.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{id}})
	var missing *types.ImageNotFoundException
	switch {
	case errors.As(err, &missing):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("ECR: describe images of %s: %w", repo, err)
	case len(out.ImageDetails) == 0:
		return "", nil
	}
	return aws.ToString(out.ImageDetails[0].ImageDigest), nil
}

// registryAuth is the Docker Engine's credentials for the account's
// registry, from GetAuthorizationToken, and the registry's host.
func registryAuth(ctx context.Context, api *ecr.Client) (registry.AuthConfig, string, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return registry.AuthConfig{}, "", fmt.Errorf("ECR: get authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return registry.AuthConfig{}, "", errors.New("ECR: get authorization token: no authorization data")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return registry.AuthConfig{}, "", fmt.Errorf("ECR: the authorization token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return registry.AuthConfig{}, "", errors.New("ECR: the authorization token is not user:password")
	}
	endpoint := aws.ToString(d.ProxyEndpoint)
	host := strings.TrimPrefix(strings.TrimPrefix(endpoint, "https://"), "http://")
	return registry.AuthConfig{Username: user, Password: pass, ServerAddress: endpoint}, host, nil
}
