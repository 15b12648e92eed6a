package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Docker is what ecr-push needs of a Docker Engine; *client.Client has
// it, with the API version negotiated.
type Docker interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageTag(ctx context.Context, source, target string) error
	ImagePush(ctx context.Context, image string, options image.PushOptions) (io.ReadCloser, error)
}

var _ Docker = (*client.Client)(nil)

// buildSpec is an image to build from the job's files.
type buildSpec struct {
	context    string // the job's folder sent as the build context
	dockerfile string // relative to context
	args       map[string]*string
	target     string
	tags       []string // full references: repositoryUri:tag
	labels     map[string]string
	auth       map[string]registry.AuthConfig // for FROM images in ECR
}

// build builds b through the Engine API with the job's folder as its
// context, streaming the build's output to the job's log, and returns the
// image's ID. The classic builder is used: BuildKit needs a session the
// Engine API alone does not give.
func (s *step) build(ctx context.Context, b buildSpec) (string, error) {
	ignore, err := s.readDockerignore(ctx, b.context)
	if err != nil {
		return "", err
	}
	// The Dockerfile and .dockerignore go to the engine even when
	// excluded, as docker build sends them: it needs them.
	skip := func(name string) bool {
		return name != path.Clean(b.dockerfile) && name != ".dockerignore" && ignore.excluded(name)
	}
	buildCtx, err := folderTar(ctx, s.run.Files, b.context, skip)
	if err != nil {
		return "", fmt.Errorf("build context %s: %w", b.context, err)
	}
	defer buildCtx.Close()
	resp, err := s.r.docker.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags: b.tags, Dockerfile: b.dockerfile, BuildArgs: b.args, Target: b.target, Labels: b.labels,
		AuthConfigs: b.auth, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	defer resp.Body.Close()
	var id string
	err = readMessages(resp.Body, func(m jsonmessage.JSONMessage) {
		switch {
		case m.Stream != "":
			io.WriteString(s.log, m.Stream)
		case m.Aux != nil:
			var r build.Result
			if json.Unmarshal(*m.Aux, &r) == nil && r.ID != "" {
				id = r.ID
			}
		case m.Status != "" && m.Progress == nil:
			s.logf("%s", statusLine(m))
		}
	})
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	if id == "" {
		return "", errors.New("docker build: the engine reported no image")
	}
	return id, nil
}

// push pushes ref with auth, logging each layer's outcome (not its
// progress), and returns the digest the registry gave it.
func (s *step) push(ctx context.Context, ref, auth string) (string, error) {
	rc, err := s.r.docker.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return "", fmt.Errorf("docker push %s: %w", ref, err)
	}
	defer rc.Close()
	var digest string
	err = readMessages(rc, func(m jsonmessage.JSONMessage) {
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
			return
		}
		switch m.Status {
		case "", "Preparing", "Waiting", "Pushing":
			return
		}
		s.logf("%s", statusLine(m))
	})
	if err != nil {
		return "", fmt.Errorf("docker push %s: %w", ref, err)
	}
	return digest, nil
}

// tagImage gives the engine's image src the references tags, after
// checking that it is there.
func (s *step) tagImage(ctx context.Context, src string, tags []string) error {
	img, err := s.r.docker.ImageInspect(ctx, src)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("the Docker engine has no image %s: build it in an earlier step of the job (setup_remote_docker, then docker build -t %s), or leave image empty to build it here", src, src)
	}
	if err != nil {
		return fmt.Errorf("docker inspect %s: %w", src, err)
	}
	s.logf("Pushing the image %s (%s) built by an earlier step", src, shortID(img.ID))
	for _, t := range tags {
		if err := s.r.docker.ImageTag(ctx, src, t); err != nil {
			return fmt.Errorf("docker tag %s %s: %w", src, t, err)
		}
	}
	return nil
}

// readMessages reads the engine's stream of JSON messages, handing each
// to fn, until it ends or one is an error.
func readMessages(r io.Reader, fn func(jsonmessage.JSONMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return errors.New(strings.TrimSpace(m.Error.Message))
		}
		if m.ErrorMessage != "" {
			return errors.New(strings.TrimSpace(m.ErrorMessage))
		}
		fn(m)
	}
}

func statusLine(m jsonmessage.JSONMessage) string {
	if m.ID != "" {
		return m.ID + ": " + m.Status
	}
	return m.Status
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(len(id), 12)]
}
