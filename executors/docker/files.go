package docker

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
)

// checkout copies the commit's tree into the working directory (or the
// step's path), owned by the job's user. The image needs no git: the tree
// comes from the source tarball, or from `git archive` on the host.
func (j *jobRun) checkout(ctx context.Context, step *workflows.CheckoutStep) error {
	dest := j.path(step.Path)
	if dest != j.workDir {
		if err := j.mkdir(ctx, dest); err != nil {
			return err
		}
	}
	src := j.job.Source
	var produce func(w io.Writer) error
	switch {
	case src.Tarball != "":
		fmt.Fprintf(j.log, "Copying the source tarball into %s\n", dest)
		produce = func(w io.Writer) error {
			f, err := os.Open(src.Tarball)
			if err != nil {
				return err
			}
			defer f.Close()
			gz, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", src.Tarball, err)
			}
			// GitHub's tarballs hold the tree in one top folder
			// (owner-repo-sha/); its contents go to dest.
			tw := tar.NewWriter(w)
			if err := retar(tw, gz, j.owned(stripFirst)); err != nil {
				return err
			}
			return tw.Close()
		}
	case src.GitDir != "":
		rev := src.Revision
		if rev == "" {
			rev = "HEAD"
		}
		fmt.Fprintf(j.log, "Copying %s of %s into %s\n", rev, src.GitDir, dest)
		produce = func(w io.Writer) error {
			var stderr strings.Builder
			cmd := exec.CommandContext(ctx, "git", "-C", src.GitDir, "archive", "--format=tar", rev)
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("git archive %s: %w", rev, err)
			}
			tw := tar.NewWriter(w)
			err = retar(tw, out, j.owned(keepName))
			if err == nil {
				err = tw.Close()
			}
			if werr := cmd.Wait(); werr != nil {
				return fmt.Errorf("git archive %s: %w: %s", rev, werr, strings.TrimSpace(stderr.String()))
			}
			return err
		}
	default:
		return failf("checkout: the job has no source to check out")
	}
	// The source's faults fail the step; the engine's, the attempt.
	// Pipe returns produce's error only when it is produce's own.
	var srcErr error
	err := executors.Pipe(func(w io.Writer) error {
		srcErr = produce(w)
		return srcErr
	}, func(r io.Reader) error {
		return j.e.client.CopyToContainer(ctx, j.primary, dest, r, container.CopyToContainerOptions{})
	})
	if err != nil && err == srcErr {
		return failf("checkout: %v", err)
	}
	if err != nil {
		return fmt.Errorf("checkout: copy to %s: %w", dest, err)
	}
	return nil
}

// owned wraps a retar rename so that the entries it keeps belong to the
// job's user. (The engine's own CopyUIDGID looks the user up on the host,
// where the image's users do not exist.)
func (j *jobRun) owned(rename func(string) (string, bool)) func(*tar.Header) bool {
	return func(h *tar.Header) bool {
		name, ok := rename(h.Name)
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = name, j.uid, j.gid, "", ""
		return ok
	}
}

func keepName(name string) (string, bool) { return name, true }

// renamed turns a rename into a retar edit.
func renamed(rename func(string) (string, bool)) func(*tar.Header) bool {
	return func(h *tar.Header) bool {
		name, ok := rename(h.Name)
		h.Name = name
		return ok
	}
}

// stripFirst drops an archive's top folder from its names.
func stripFirst(name string) (string, bool) {
	_, rest, ok := strings.Cut(strings.TrimPrefix(name, "./"), "/")
	return rest, ok && rest != ""
}

// retar copies the entries of the tar stream r to tw as edit changes
// their headers, skipping those it refuses.
func retar(tw *tar.Writer, r io.Reader, edit func(*tar.Header) bool) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		// pax_global_header (GitHub's tarballs carry the commit in one)
		// is not a file.
		if hdr.Typeflag == tar.TypeXGlobalHeader || !edit(hdr) {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// copyPaths writes to w one tar stream of the primary's files at each of
// paths (absolute), each named by name(path) plus what lies under it.
// Paths that do not exist are reported to skip and left out.
func (j *jobRun) copyPaths(ctx context.Context, w io.Writer, paths []string, name func(string) string, skip func(p string)) error {
	tw := tar.NewWriter(w)
	for _, p := range paths {
		rc, stat, err := j.e.client.CopyFromContainer(ctx, j.primary, p)
		if client.IsErrNotFound(err) {
			skip(p)
			continue
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		// The engine names entries from the path's base name: "dist" for
		// /w/dist, "dist/app.js" beneath it.
		base, to := stat.Name, name(p)
		err = retar(tw, rc, renamed(func(n string) (string, bool) {
			rest, ok := strings.CutPrefix(n, base)
			if !ok || (rest != "" && rest[0] != '/') {
				return "", false
			}
			full := strings.TrimPrefix(to+rest, "/")
			return full, full != "" && full != "."
		}))
		rc.Close()
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
	}
	return tw.Close()
}

// persist adds the step's paths, named relative to its root, to the
// workflow's workspace. Paths may be globs, as on CircleCI.
func (j *jobRun) persist(ctx context.Context, step *workflows.PersistStep) error {
	if j.job.Workspace == "" {
		return failf("persist_to_workspace: the job has no workspace folder")
	}
	root := j.path(step.Root)
	rels, err := j.glob(ctx, root, step.Paths)
	if err != nil {
		return err
	}
	paths := make([]string, len(rels))
	rel := map[string]string{}
	for i, p := range rels {
		paths[i] = path.Join(root, p)
		rel[paths[i]] = path.Clean(p)
	}
	var missing []string
	ws := &executors.Workspace{Dir: j.job.Workspace, MaxBytes: j.e.opts.WorkspaceMaxBytes}
	err = executors.Pipe(func(w io.Writer) error {
		return j.copyPaths(ctx, w, paths, func(p string) string { return rel[p] }, func(p string) { missing = append(missing, p) })
	}, func(r io.Reader) error {
		return ws.Persist(j.job.ID, r)
	})
	if len(missing) > 0 {
		return failf("persist_to_workspace: %s: no such file or directory", strings.Join(missing, ", "))
	}
	if err != nil {
		return failf("persist_to_workspace: %v", err)
	}
	return nil
}

// globScript prints, one a line, what each pattern ($2...) matches under
// the folder $1; a pattern that matches nothing fails it.
const globScript = `cd "$1" || exit 1
shift
IFS='
'
for pat in "$@"; do
  found=
  for m in $pat; do
    [ -e "$m" ] || [ -L "$m" ] || continue
    printf '%s\n' "$m"
    found=1
  done
  [ -n "$found" ] || { echo "$pat matches nothing under $PWD" >&2; exit 3; }
done`

// glob expands patterns under root in the primary container, where the
// files are; plain paths need no shell.
func (j *jobRun) glob(ctx context.Context, root string, patterns []string) ([]string, error) {
	if !slices.ContainsFunc(patterns, func(p string) bool { return strings.ContainsAny(p, "*?[") }) {
		return patterns, nil
	}
	out, err := j.output(ctx, j.user, append([]string{"/bin/sh", "-c", globScript, "sh", root}, patterns...)...)
	if err != nil {
		return nil, failf("persist_to_workspace: %v", err)
	}
	return strings.Split(strings.TrimSpace(out), "\n"), nil
}

// attach unpacks the workflow's workspace layers at the step's path.
func (j *jobRun) attach(ctx context.Context, step *workflows.AttachStep) error {
	if j.job.Workspace == "" {
		return failf("attach_workspace: the job has no workspace folder")
	}
	at := j.path(step.At)
	if err := j.mkdir(ctx, at); err != nil {
		return err
	}
	ws := &executors.Workspace{Dir: j.job.Workspace, MaxBytes: j.e.opts.WorkspaceMaxBytes}
	err := ws.Attach(func(layer io.Reader) error {
		return executors.Pipe(func(w io.Writer) error {
			tw := tar.NewWriter(w)
			if err := retar(tw, layer, j.owned(keepName)); err != nil {
				return err
			}
			return tw.Close()
		}, func(r io.Reader) error {
			return j.e.client.CopyToContainer(ctx, j.primary, at, r, container.CopyToContainerOptions{})
		})
	})
	if err != nil {
		return failf("attach_workspace: %v", err)
	}
	fmt.Fprintf(j.log, "Attached the workspace at %s\n", at)
	return nil
}

// cache is the project's cache store. Docker archives name files by
// their absolute paths in the container and the local executor's by its
// attempt folder, so each executor keeps its archives in a folder of its
// own: a key shared by both kinds of job never restores the other's.
func (j *jobRun) cache() *executors.Cache {
	return &executors.Cache{Dir: filepath.Join(j.job.CacheDir, "docker"), MaxBytes: j.e.opts.CacheMaxBytes}
}

// keyData is what the cache key templates of a step see; checksum reads
// the file from the primary.
func (j *jobRun) keyData(ctx context.Context) executors.KeyData {
	return executors.KeyDataFor(j.job, j.env(nil), func(file string) (string, error) {
		rc, _, err := j.e.client.CopyFromContainer(ctx, j.primary, j.path(file))
		if err != nil {
			return "", err
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		if _, err := tr.Next(); err != nil {
			return "", err
		}
		return executors.Checksum(tr)
	})
}

// saveCache stores the step's paths under its rendered key, named by
// their absolute paths; a key that exists is kept, as on CircleCI.
func (j *jobRun) saveCache(ctx context.Context, step *workflows.SaveCacheStep) error {
	if j.job.CacheDir == "" {
		return failf("save_cache: the job has no cache folder")
	}
	key, err := executors.RenderKey(step.Key, j.keyData(ctx))
	if err != nil {
		return failf("save_cache: %v", err)
	}
	var paths []string
	for _, p := range step.Paths {
		cp := j.path(p)
		if _, err := j.e.client.ContainerStatPath(ctx, j.primary, cp); err != nil {
			if !client.IsErrNotFound(err) {
				return fmt.Errorf("save_cache: stat %s: %w", cp, err)
			}
			// As on CircleCI: a missing path is a warning, not a failure.
			fmt.Fprintf(j.log, "Warning: could not find %s, not saving it\n", p)
			continue
		}
		paths = append(paths, cp)
	}
	err = j.cache().SaveStep(key, paths, func(w io.Writer) error {
		return j.copyPaths(ctx, w, paths, func(p string) string { return p }, func(p string) {
			fmt.Fprintf(j.log, "Warning: could not find %s, not saving it\n", p)
		})
	}, j.log)
	if err != nil {
		return failf("save_cache: %v", err)
	}
	return nil
}

// restoreCache unpacks the first cache matching the step's keys where it
// was saved.
func (j *jobRun) restoreCache(ctx context.Context, step *workflows.RestoreCacheStep) error {
	if j.job.CacheDir == "" {
		return failf("restore_cache: the job has no cache folder")
	}
	kd := j.keyData(ctx)
	found, archive, err := j.cache().RestoreStep(step.Keys, kd, j.log)
	if err != nil {
		return failf("restore_cache: %v", err)
	}
	if archive == nil {
		return nil
	}
	defer archive.Close()
	if err := j.e.client.CopyToContainer(ctx, j.primary, "/", archive, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("restore_cache %s: %w", found, err)
	}
	fmt.Fprintf(j.log, "Restored cache %s\n", found)
	return nil
}

func (j *jobRun) outputs() *executors.Outputs {
	return &executors.Outputs{Dir: j.job.OutputDir, MaxBytes: j.e.opts.OutputMaxBytes}
}

// storeArtifacts keeps a file or a folder's contents as artifacts under
// the destination (the path as given by default).
func (j *jobRun) storeArtifacts(ctx context.Context, step *workflows.StoreArtifactsStep) error {
	if j.job.OutputDir == "" {
		return failf("store_artifacts: the job has no output folder")
	}
	dest := step.Destination
	if dest == "" {
		dest = strings.TrimPrefix(strings.TrimPrefix(step.Path, "~"), "/")
	}
	return j.store(ctx, "store_artifacts", step.Path, dest, j.outputs().StoreArtifacts)
}

func (j *jobRun) storeTestResults(ctx context.Context, step *workflows.StoreTestResultsStep) error {
	if j.job.OutputDir == "" {
		return failf("store_test_results: the job has no output folder")
	}
	return j.store(ctx, "store_test_results", step.Path, "", j.outputs().StoreTestResults)
}

// store copies p out of the primary into keep. A folder's contents go
// under dest; a file is named dest's last element, or kept by its own
// name when dest is empty.
func (j *jobRun) store(ctx context.Context, what, p, dest string, keep func(io.Reader, string) error) error {
	src := j.path(p)
	rc, stat, err := j.e.client.CopyFromContainer(ctx, j.primary, src)
	if client.IsErrNotFound(err) {
		// A failed job often has no reports; saying so is enough.
		fmt.Fprintf(j.log, "No files found at %s\n", p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: copy %s: %w", what, src, err)
	}
	defer rc.Close()
	base := stat.Name
	rename := func(n string) (string, bool) {
		rest, ok := strings.CutPrefix(n, base)
		rest = strings.TrimPrefix(rest, "/")
		return rest, ok && rest != ""
	}
	if !stat.Mode.IsDir() {
		name := base
		if dest != "" {
			dest, name = path.Split(path.Clean("/" + dest))
		}
		rename = func(n string) (string, bool) { return name, n == base }
	}
	err = executors.Pipe(func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := retar(tw, rc, renamed(rename)); err != nil {
			return err
		}
		return tw.Close()
	}, func(r io.Reader) error {
		return keep(r, dest)
	})
	if err != nil {
		return failf("%s: %v", what, err)
	}
	return nil
}
