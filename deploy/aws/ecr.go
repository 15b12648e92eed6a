package aws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

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
