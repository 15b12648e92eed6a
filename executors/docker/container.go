package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// keepAlive is the primary container's process when the job gives it no
// command of its own: CircleCI does not run the primary image's entrypoint
// (it could exit, or eat the job's resources); steps are exec'd beside it.
var keepAlive = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"}

// jobRun is one attempt while it runs.
type jobRun struct {
	e    *Executor
	job  *engine.JobRun
	spec *workflows.JobSpec
	log  io.Writer

	network    string   // lent by the executor's pool, if any
	containers []string // removed with the attempt
	primary    string
	netns      string // the container whose network namespace the others join
	user       string // the primary's user; steps run as it
	home       string // $HOME of user in the primary
	workDir    string // absolute working_directory
	hasBash    bool
	uid, gid   int  // of user, for the files steps copy in
	remote     bool // the host's socket is mounted
	execs      int  // exec counter, for kill markers

	background []*execution   // background steps, stopped with the job
	bg         sync.WaitGroup // their output copiers
}

func (j *jobRun) labels() map[string]string {
	return map[string]string{
		LabelOwner:    owner,
		LabelAttempt:  j.job.ID,
		LabelPipeline: j.job.PipelineID,
		LabelWorkflow: j.job.WorkflowID,
		LabelJob:      j.job.JobName,
	}
}

// start leases the attempt's network and creates its containers,
// pulling the images the engine lacks.
func (j *jobRun) start(ctx context.Context) error {
	res, err := j.e.resources(j.spec.ResourceClass)
	if err != nil {
		return err
	}
	primary := j.spec.Docker[0]
	netMode := j.e.opts.Network
	if j.e.nets != nil {
		l, err := j.e.nets.lease(ctx)
		if err != nil {
			return err
		}
		j.network, netMode = l.network, l.network
		if l.holder != "" {
			// Single use: it goes with the attempt.
			j.containers = append(j.containers, l.holder)
			if !hasServiceNames(j.spec) {
				j.netns, netMode = l.holder, "container:"+l.holder
			}
		}
	}
	j.user = primary.User
	cfg := &container.Config{
		Image:      primary.Image,
		User:       primary.User,
		Env:        executors.EnvList(primary.Environment),
		Labels:     j.labels(),
		Entrypoint: primary.Entrypoint,
		Cmd:        primary.Command,
	}
	if len(primary.Entrypoint) == 0 && len(primary.Command) == 0 {
		cfg.Entrypoint = keepAlive
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(netMode),
		Resources:   container.Resources{NanoCPUs: int64(res.CPUs * 1e9), Memory: res.Memory},
	}
	for _, svc := range j.spec.Docker[1:] {
		if svc.Name != "" {
			// Services share the primary's network namespace; their names
			// are aliases of localhost, as on CircleCI. The engine sets
			// them only on a container with a network of its own, so a job
			// with such names leaves the pool's holder aside.
			host.ExtraHosts = append(host.ExtraHosts, svc.Name+":127.0.0.1")
		}
	}
	if j.e.opts.RemoteDocker && wantsRemoteDocker(j.spec) {
		host.Binds = []string{j.e.opts.DockerSocket + ":/var/run/docker.sock"}
		j.remote = true
	}
	id, err := j.create(ctx, primary, cfg, host)
	if err != nil {
		return err
	}
	j.primary = id
	if j.netns == "" {
		j.netns = id
	}
	for _, svc := range j.spec.Docker[1:] {
		cfg := &container.Config{
			Image:      svc.Image,
			User:       svc.User,
			Env:        executors.EnvList(svc.Environment),
			Labels:     j.labels(),
			Entrypoint: svc.Entrypoint,
			Cmd:        svc.Command,
		}
		host := &container.HostConfig{NetworkMode: container.NetworkMode("container:" + j.netns)}
		if _, err := j.create(ctx, svc, cfg, host); err != nil {
			return err
		}
	}
	return nil
}

// create creates and starts a container of img, recording it for
// teardown first.
//
// The engine is not asked beforehand whether it has the image, nor how
// many CPUs it has: a create it refuses is tried again once the image is
// pulled, or once the CPU limit is lowered to the engine's (see
// resources). That spares every job an image inspect and the first an
// info request (6 ms), as docker run does.
func (j *jobRun) create(ctx context.Context, img workflows.DockerImage, cfg *container.Config, host *container.HostConfig) (string, error) {
	var c container.CreateResponse
	for pulled, clamped := false, false; ; {
		// A cancellation must not cut the request short: the engine may
		// create the container all the same, and teardown would not
		// know it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.e.opts.CleanupTimeout)
		var err error
		c, err = j.e.client.ContainerCreate(cctx, cfg, host, nil, nil, "")
		cancel()
		if err == nil {
			break
		}
		switch {
		case client.IsErrNotFound(err) && !pulled:
			pulled = true
			again, perr := j.e.ensureImage(ctx, img, j.log)
			if perr != nil {
				return "", perr
			}
			if again {
				continue
			}
		case host.NanoCPUs > 0 && !clamped:
			clamped = true
			if j.e.clampCPUs(ctx, &host.Resources) {
				continue
			}
		}
		return "", fmt.Errorf("create %q: %w", cfg.Image, err)
	}
	j.containers = append(j.containers, c.ID)
	if err := j.e.client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start %q: %w", cfg.Image, err)
	}
	return c.ID, nil
}

// teardown removes the attempt's containers and gives its network back
// to the pool, or has it removed when a container may be left on it. It
// runs after cancellation too, so it gets a context of its own.
//
// Once the job's log is whole the removal goes on in the background,
// awaited by Close, so that Run returns as soon as the job's steps are
// done: removing a container takes the engine 60 to 100 ms (SIGKILL,
// its exit, its network endpoint, its file system), which the next job
// of a chain then spends starting rather than waiting. The output of
// background steps ends only with their container, so a job that has
// any removes its containers before Run returns.
func (j *jobRun) teardown(ctx context.Context) {
	if len(j.background) > 0 {
		j.remove(ctx)
		return
	}
	ctx = context.WithoutCancel(ctx)
	j.e.inBackground(func() { j.remove(ctx) })
}

// remove is teardown's work.
func (j *jobRun) remove(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.e.opts.CleanupTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(j.containers))
	for i, id := range j.containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = j.e.removeContainer(ctx, id)
		}()
	}
	wg.Wait()
	// Background steps' streams end with their container; closing them
	// makes sure, should the engine not have removed it.
	for _, x := range j.background {
		x.conn.Close()
	}
	j.bg.Wait()
	err := errors.Join(errs...)
	if j.network != "" {
		j.e.nets.release(ctx, j.network, err == nil)
	}
	if err != nil {
		// Cleanup by label catches what is left.
		j.e.log.Warn("attempt teardown", "attempt", j.job.ID, "err", err)
	}
}

func (e *Executor) removeContainer(ctx context.Context, id string) error {
	err := e.client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !client.IsErrNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
		return fmt.Errorf("docker: remove container %s: %w", id, err)
	}
	return nil
}

// removeLabelled removes the containers, networks and volumes labelled
// with attemptID.
func (e *Executor) removeLabelled(ctx context.Context, attemptID string) error {
	f := filters.NewArgs(filters.Arg("label", LabelAttempt+"="+attemptID))
	cs, err := e.client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("docker: cleanup %s: %w", attemptID, err)
	}
	var errs []error
	holders := map[string]bool{}
	for _, c := range cs {
		errs = append(errs, e.removeContainer(ctx, c.ID))
		if m := container.NetworkMode(c.HostConfig.NetworkMode); m.IsContainer() {
			holders[m.ConnectedContainer()] = true
		}
	}
	// The pool's holder that the attempt's containers joined carries the
	// pool's label, not the attempt's: it was started before the attempt.
	for id := range holders {
		c, err := e.client.ContainerInspect(ctx, id)
		if err != nil || c.Config == nil || c.Config.Labels[LabelPool] == "" {
			continue
		}
		errs = append(errs, e.removeContainer(ctx, id))
	}
	nets, err := e.client.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("docker: cleanup %s: %w", attemptID, err))
	}
	for _, n := range nets {
		if err := e.client.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove network %s: %w", n.Name, err))
		}
	}
	vols, err := e.client.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("docker: cleanup %s: %w", attemptID, err))
	}
	for _, v := range vols.Volumes {
		if err := e.client.VolumeRemove(ctx, v.Name, true); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// resources looks up a job's resource class, with its CPUs clamped to the
// engine's once they are known: the engine refuses a limit above what it
// has, and clampCPUs learns them then.
func (e *Executor) resources(class string) (Resources, error) {
	if class == "" {
		class = e.opts.DefaultResourceClass
	}
	r, ok := e.opts.ResourceClasses[class]
	if !ok {
		return Resources{}, fmt.Errorf("resource_class %q is not offered by this server", class)
	}
	e.mu.Lock()
	ncpu := e.ncpu
	e.mu.Unlock()
	if ncpu > 0 && r.CPUs > float64(ncpu) {
		r.CPUs = float64(ncpu)
	}
	return r, nil
}

// clampCPUs lowers r's CPU limit to the engine's CPU count, asking the
// engine for it the first time, and reports whether it lowered it.
func (e *Executor) clampCPUs(ctx context.Context, r *container.Resources) bool {
	e.mu.Lock()
	ncpu := e.ncpu
	e.mu.Unlock()
	if ncpu == 0 {
		info, err := e.client.Info(ctx)
		if err != nil {
			e.log.Warn("engine info", "err", err)
			return false
		}
		ncpu = info.NCPU
		e.mu.Lock()
		e.ncpu = ncpu
		e.mu.Unlock()
	}
	if ncpu <= 0 || r.NanoCPUs <= int64(ncpu)*1e9 {
		return false
	}
	r.NanoCPUs = int64(ncpu) * 1e9
	return true
}

// ensureImage pulls img unless the engine has it, saying so in the job's
// log, and reports whether it pulled it.
func (e *Executor) ensureImage(ctx context.Context, img workflows.DockerImage, log io.Writer) (pulled bool, err error) {
	if _, err := e.client.ImageInspect(ctx, img.Image); err == nil {
		return false, nil
	} else if !client.IsErrNotFound(err) {
		return false, fmt.Errorf("inspect image %q: %w", img.Image, err)
	}
	fmt.Fprintf(log, "Pulling image %s\n", img.Image)
	auth, err := e.registryAuth(img)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.PullTimeout)
	defer cancel()
	rc, err := e.client.ImagePull(ctx, img.Image, image.PullOptions{RegistryAuth: auth})
	if err == nil {
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		rc.Close()
	}
	if err != nil {
		return false, fmt.Errorf("pull %q: %w", img.Image, err)
	}
	fmt.Fprintf(log, "Pulled image %s\n", img.Image)
	return true, nil
}

// registryAuth encodes the credentials for img's registry: the image's
// own `auth`, else the server's for that registry, else none.
func (e *Executor) registryAuth(img workflows.DockerImage) (string, error) {
	auth := img.Auth
	if auth == nil {
		named, err := reference.ParseNormalizedNamed(img.Image)
		if err != nil {
			return "", fmt.Errorf("image %q: %w", img.Image, err)
		}
		if a, ok := e.opts.Registries[reference.Domain(named)]; ok {
			auth = &a
		}
	}
	if auth == nil {
		return "", nil
	}
	s, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: auth.Username, Password: auth.Password})
	if err != nil {
		return "", fmt.Errorf("image %q: encode credentials: %w", img.Image, err)
	}
	return s, nil
}

func hasServiceNames(spec *workflows.JobSpec) bool {
	for _, svc := range spec.Docker[1:] {
		if svc.Name != "" {
			return true
		}
	}
	return false
}

func wantsRemoteDocker(spec *workflows.JobSpec) bool {
	for _, s := range spec.Steps {
		if s.SetupRemoteDocker != nil {
			return true
		}
	}
	return false
}
