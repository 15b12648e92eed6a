// Package dockertest gives tests a Docker engine and a tiny image built
// offline, for machines that can reach an engine but no registry.
//
// The image, Image, is Debian's static busybox (package busybox-static) with
// its applets linked, a root and a non-root user (User), and /tmp. It is
// imported through the Engine API from a root file system written in Go, so
// building it needs no registry, no Dockerfile and no docker CLI.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Image is the test image's reference.
const Image = "slipway-test-busybox:latest"

// User is the non-root user of Image, with its home in /home/circleci.
const User = "circleci"

// BusyboxPath is where Debian's busybox-static installs the binary that
// Image is made of: docker.DebianBusybox, not imported from there because
// the docker package's own tests import this package.
const BusyboxPath = "/bin/busybox"

// requireEnv makes tests that need an engine fail rather than skip.
const requireEnv = "SLIPWAY_REQUIRE_DOCKER"

// labelBusybox records which busybox binary an image was built from, so
// that a new binary rebuilds it and an unchanged one is reused.
const labelBusybox = "org.slipway.test.busybox-sha256"

// RequireDocker returns a client of the engine that the environment
// (DOCKER_HOST...) points at. Without a reachable engine it skips tb with
// the reason, or fails it when SLIPWAY_REQUIRE_DOCKER=1.
func RequireDocker(tb testing.TB) client.APIClient {
	tb.Helper()
	unavailable := func(format string, args ...any) {
		tb.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(requireEnv) == "1" {
			tb.Fatalf("%s (%s=1 requires it)", msg, requireEnv)
		}
		tb.Skipf("skipping: %s (set %s=1 to fail instead)", msg, requireEnv)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		unavailable("no docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		unavailable("no docker engine reachable: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// RequireImage returns a client as RequireDocker does, with Image present
// on its engine: built on first use in the process, rebuilt when the busybox
// binary changed. Without busybox on the host it skips or fails as
// RequireDocker does.
func RequireImage(tb testing.TB) client.APIClient {
	tb.Helper()
	cli := RequireDocker(tb)
	if _, err := os.Stat(BusyboxPath); err != nil {
		msg := fmt.Sprintf("no %s to build %s: install Debian's busybox-static", BusyboxPath, Image)
		if os.Getenv(requireEnv) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip("skipping: " + msg)
	}
	build.Lock()
	defer build.Unlock()
	if !build.done {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := EnsureImage(ctx, cli); err != nil {
			tb.Fatal(err)
		}
		build.done = true
	}
	return cli
}

var build struct {
	sync.Mutex
	done bool
}

// EnsureImage imports Image into the engine unless an image built from the
// same busybox binary is already there. Safe to call repeatedly and from
// several processes: an import only re-tags the name.
func EnsureImage(ctx context.Context, cli client.APIClient) error {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("dockertest: %w", err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	if img, err := cli.ImageInspect(ctx, Image); err == nil && img.Config != nil && img.Config.Labels[labelBusybox] == digest {
		return nil
	}
	applets, err := exec.CommandContext(ctx, BusyboxPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("dockertest: list busybox applets: %w", err)
	}
	rootfs, err := rootFS(bin, strings.Fields(string(applets)))
	if err != nil {
		return fmt.Errorf("dockertest: %w", err)
	}
	resp, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, Image, image.ImportOptions{
		Message: "slipway test image from " + BusyboxPath,
		Changes: []string{
			`ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
			`CMD ["/bin/sh"]`,
			fmt.Sprintf("LABEL %s=%s", labelBusybox, digest),
		},
	})
	if err != nil {
		return fmt.Errorf("dockertest: import %s: %w", Image, err)
	}
	defer resp.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("dockertest: import %s: %w", Image, err)
	}
	return nil
}

// rootFS returns the tar of Image's file system: busybox, a link per applet
// (paths as `busybox --list-full` prints them), users and writable folders.
func rootFS(busybox []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dirs := []struct {
		name string
		mode int64
		uid  int
	}{
		{"bin", 0o755, 0}, {"sbin", 0o755, 0}, {"usr", 0o755, 0}, {"usr/bin", 0o755, 0},
		{"usr/sbin", 0o755, 0}, {"etc", 0o755, 0}, {"root", 0o700, 0}, {"home", 0o755, 0},
		{"home/" + User, 0o755, 1000}, {"tmp", 0o1777, 0}, {"var", 0o755, 0}, {"var/www", 0o755, 0},
		{"proc", 0o755, 0}, {"sys", 0o755, 0}, {"dev", 0o755, 0},
	}
	for _, d := range dirs {
		if err := dir(d.name, d.mode, d.uid); err != nil {
			return nil, err
		}
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return nil, err
	}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" || path.Dir(a) == "." {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\n" + User + ":x:1000:1000:" + User + ":/home/" + User + ":/bin/sh\n"
	group := "root:x:0:\n" + User + ":x:1000:\n"
	if err := file("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
