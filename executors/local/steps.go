package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// checkout puts the commit's tree at the step's path: from the local git
// repository when there is one, as a git working copy so that commands
// can ask git about it, or else from the source tarball.
func (j *job) checkout(ctx context.Context, s *workflows.CheckoutStep) outcome {
	dest := j.workdir
	if s.Path != "" {
		dest = j.resolve(j.workdir, s.Path)
	}
	src := j.run.Source
	var err error
	switch {
	case src.GitDir != "":
		err = j.checkoutGit(ctx, src, dest)
	case src.Tarball != "":
		err = j.checkoutTarball(src.Tarball, dest)
	default:
		return fail("checkout: the job has no source (no git repository, no tarball)")
	}
	if err != nil {
		return fail("checkout: %v", err)
	}
	return success
}

// checkoutGit makes dest a git repository borrowing the source's objects
// (git alternates): no copy of history, any commit of the source can be
// checked out, even one no branch points at, and the source repository
// is never written to. The source is asked about as slipway; dest, the
// job's, is written by git run as a process of the job (its user, its
// cgroup): a hook or a config that an earlier step planted in dest/.git
// runs as the job, not as slipway. The job's user must be able to read
// the source's objects.
func (j *job) checkoutGit(ctx context.Context, src engine.Source, dest string) error {
	if src.Revision == "" {
		return errors.New("no revision to check out")
	}
	gitDir, err := j.git(ctx, false, src.GitDir, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return err
	}
	sha, err := j.git(ctx, false, src.GitDir, "rev-parse", "--verify", "--end-of-options", src.Revision+"^{commit}")
	if err != nil {
		return fmt.Errorf("revision %q: %w", src.Revision, err)
	}
	if err := j.user.do(func() error { return os.MkdirAll(dest, 0o755) }); err != nil {
		return err
	}
	if _, err := j.git(ctx, true, dest, "init", "-q"); err != nil {
		return err
	}
	alternates := filepath.Join(dest, ".git", "objects", "info", "alternates")
	err = j.user.do(func() error {
		return os.WriteFile(alternates, []byte(filepath.Join(gitDir, "objects")+"\n"), 0o644)
	})
	if err != nil {
		return err
	}
	if _, err := j.git(ctx, true, dest, "config", "remote.origin.url", src.GitDir); err != nil {
		return err
	}
	// On a branch as CircleCI leaves it, so that `git branch` and tools
	// reading the branch see the pipeline's; detached for a tag.
	args := []string{"-c", "advice.detachedHead=false", "checkout", "-q", "-f", "--detach", sha}
	if b := j.run.Env["CIRCLE_BRANCH"]; b != "" {
		args = []string{"checkout", "-q", "-f", "-B", b, sha}
	}
	_, err = j.git(ctx, true, dest, args...)
	return err
}

// git runs git in dir with the job's base environment, returning its
// trimmed output; its error carries what git said. asJob runs it as a
// process of the job, for a dir the job owns.
func (j *job) git(ctx context.Context, asJob bool, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = executors.EnvList(executors.MergeEnv(j.base, map[string]string{"GIT_TERMINAL_PROMPT": "0", attemptEnv: j.run.ID}))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	var err error
	if asJob {
		err = j.start(cmd)
	} else {
		err = cmd.Start()
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// checkoutTarball unpacks a GitHub source tarball, whose entries sit in
// one top folder ("owner-repo-sha/") that is not part of the tree. The
// tarball is the engine's, read as slipway; dest is the job's, written
// as its user.
func (j *job) checkoutTarball(tarball, dest string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	return j.user.do(func() error {
		return executors.UntarFunc(f, func(name string) (string, string, error) {
			_, rest, _ := strings.Cut(strings.TrimPrefix(name, "./"), "/")
			return dest, rest, nil
		})
	})
}

// Cache archives name their entries by where they live: "job/home/..."
// under the job's home (working directory included), which is different
// for every attempt, and "host/..." for absolute host paths. A cache
// saved by one attempt then restores into the next attempt's home. (The
// name keeps "home/" from when HOME was a folder inside the attempt's, so
// that caches saved then still restore.)
const (
	cacheHomePrefix = "job/home/"
	cacheHostPrefix = "host/"
)

func (j *job) cacheName(p string) (string, error) {
	if rel, err := filepath.Rel(j.home, p); err == nil && filepath.IsLocal(rel) {
		return cacheHomePrefix + filepath.ToSlash(rel), nil
	}
	return cacheHostPrefix + strings.TrimPrefix(filepath.ToSlash(p), "/"), nil
}

func (j *job) cacheRoute(name string) (string, string, error) {
	// The home folder itself is "job/home", cleaned of its "/.".
	if rel, ok := strings.CutPrefix(name+"/", cacheHomePrefix); ok {
		return j.home, strings.TrimSuffix(rel, "/"), nil
	}
	if rel, ok := strings.CutPrefix(name, cacheHostPrefix); ok {
		return "/", rel, nil
	}
	return "", "", fmt.Errorf("not an entry of a local cache")
}

func (j *job) cache() *executors.Cache {
	return &executors.Cache{Dir: j.run.CacheDir, MaxBytes: j.e.opts.CacheMaxBytes, Now: j.e.opts.Now}
}

// keyData is what a cache key template sees: the job's environment, and
// files relative to its working directory.
func (j *job) keyData() executors.KeyData {
	env := executors.StepEnv(j.base, j.run, nil)
	d := executors.KeyDataFor(j.run, env, func(file string) (sum string, err error) {
		err = j.user.do(func() error {
			f, err := os.Open(j.resolve(j.workdir, file))
			if err != nil {
				return err
			}
			defer f.Close()
			sum, err = executors.Checksum(f)
			return err
		})
		return sum, err
	})
	d.Now = j.e.opts.Now
	return d
}

func (j *job) saveCache(s *workflows.SaveCacheStep) outcome {
	if j.run.CacheDir == "" {
		return fail("save_cache: the job has no cache folder")
	}
	key, err := executors.RenderKey(s.Key, j.keyData())
	if err != nil {
		return fail("save_cache: %v", err)
	}
	var paths []string
	for _, p := range s.Paths {
		hp := j.resolve(j.workdir, p)
		if err := j.user.do(func() error { _, err := os.Lstat(hp); return err }); err != nil {
			// As on CircleCI: a missing path is a warning, not a failure.
			fmt.Fprintf(j.log, "Warning: could not find %s, not saving it\n", p)
			continue
		}
		paths = append(paths, hp)
	}
	err = j.cache().SaveStep(key, paths, func(w io.Writer) error {
		return j.user.do(func() error { return executors.WriteTar(w, paths, j.cacheName) })
	}, j.log)
	if err != nil {
		return fail("save_cache: %v", err)
	}
	return success
}

func (j *job) restoreCache(s *workflows.RestoreCacheStep) outcome {
	if j.run.CacheDir == "" {
		return fail("restore_cache: the job has no cache folder")
	}
	d := j.keyData()
	found, archive, err := j.cache().RestoreStep(s.Keys, d, j.log)
	if err != nil {
		return fail("restore_cache: %v", err)
	}
	if archive == nil {
		return success
	}
	defer archive.Close()
	if err := j.user.do(func() error { return executors.UntarFunc(archive, j.cacheRoute) }); err != nil {
		return fail("restore_cache %s: %v", found, err)
	}
	fmt.Fprintf(j.log, "Restored cache %s\n", found)
	return success
}

func (j *job) persist(s *workflows.PersistStep) outcome {
	if j.run.Workspace == "" {
		return fail("persist_to_workspace: the job has no workspace folder")
	}
	root := j.resolve(j.workdir, s.Root)
	var paths []string
	for _, p := range s.Paths {
		var matches []string
		err := j.user.do(func() (err error) {
			matches, err = filepath.Glob(filepath.Join(root, p))
			return err
		})
		if err != nil {
			return fail("persist_to_workspace: path %q: %v", p, err)
		}
		if len(matches) == 0 {
			return fail("persist_to_workspace: %s matches nothing under %s", p, s.Root)
		}
		paths = append(paths, matches...)
	}
	name := func(hp string) (string, error) { return filepath.Rel(root, hp) }
	ws := &executors.Workspace{Dir: j.run.Workspace, MaxBytes: j.e.opts.WorkspaceMaxBytes, Now: j.e.opts.Now}
	if err := j.pipeTar(paths, name, func(r io.Reader) error { return ws.Persist(j.run.ID, r) }); err != nil {
		return fail("persist_to_workspace: %v", err)
	}
	return success
}

func (j *job) attach(s *workflows.AttachStep) outcome {
	if j.run.Workspace == "" {
		return fail("attach_workspace: the job has no workspace folder")
	}
	at := j.resolve(j.workdir, s.At)
	ws := &executors.Workspace{Dir: j.run.Workspace}
	untar := func(r io.Reader) error { return j.user.do(func() error { return executors.Untar(r, at) }) }
	if err := ws.Attach(untar); err != nil {
		return fail("attach_workspace: %v", err)
	}
	return success
}

func (j *job) outputs() *executors.Outputs {
	return &executors.Outputs{Dir: j.run.OutputDir, MaxBytes: j.e.opts.OutputMaxBytes}
}

// storeArtifacts keeps a file or a folder under the attempt's artifacts,
// at destination (by default the path as written, without a leading / or
// ~/).
func (j *job) storeArtifacts(s *workflows.StoreArtifactsStep) outcome {
	if j.run.OutputDir == "" {
		return fail("store_artifacts: the job has no output folder")
	}
	dest := s.Destination
	if dest == "" {
		dest = strings.TrimPrefix(strings.TrimPrefix(s.Path, "~"), "/")
	}
	return j.storeOutput("store_artifacts", s.Path, dest, j.outputs().StoreArtifacts)
}

func (j *job) storeTestResults(s *workflows.StoreTestResultsStep) outcome {
	if j.run.OutputDir == "" {
		return fail("store_test_results: the job has no output folder")
	}
	return j.storeOutput("store_test_results", s.Path, "", j.outputs().StoreTestResults)
}

// storeOutput stores what is at path under dest: a folder's contents, or
// a single file named as dest's last element (its base name when dest is
// empty).
func (j *job) storeOutput(step, path, dest string, store func(io.Reader, string) error) outcome {
	hp := j.resolve(j.workdir, path)
	var info os.FileInfo
	err := j.user.do(func() (err error) {
		info, err = os.Stat(hp)
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		// A failed job often has no reports; saying so is enough.
		fmt.Fprintf(j.log, "No files found at %s\n", path)
		return success
	}
	if err != nil {
		return fail("%s: %v", step, err)
	}
	root, fileName := hp, ""
	if !info.IsDir() {
		root, fileName = filepath.Dir(hp), filepath.Base(hp)
		if dest != "" {
			dest, fileName = filepath.Dir(dest), filepath.Base(dest)
		}
	}
	name := func(p string) (string, error) {
		if p == hp && fileName != "" {
			return fileName, nil
		}
		return filepath.Rel(root, p)
	}
	if err := j.pipeTar([]string{hp}, name, func(r io.Reader) error { return store(r, dest) }); err != nil {
		return fail("%s: %v", step, err)
	}
	return success
}

// pipeTar streams a tar of paths, read as the job's user, into consume
// without holding it in memory or on disk twice. If consume stops early
// (a cache key that exists), the writer is stopped too.
func (j *job) pipeTar(paths []string, name func(string) (string, error), consume func(io.Reader) error) error {
	produce := func(w io.Writer) error {
		return j.user.do(func() error { return executors.WriteTar(w, paths, name) })
	}
	return executors.Pipe(produce, consume)
}
