package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// HolderImageName is the image EnsureHolderImage makes.
const HolderImageName = "slipway-holder:latest"

// labelHolderBusybox records the digest of the busybox a holder image
// was made from, so that it is made again only when that changes.
const labelHolderBusybox = "org.slipway.holder.busybox"

// DebianBusybox is where Debian's busybox-static installs its statically
// linked binary, what EnsureHolderImage is given on Debian hosts.
const DebianBusybox = "/bin/busybox"

// EnsureHolderImage makes HolderImageName in the engine, offline, from a
// statically linked busybox on this host (Debian's busybox-static installs
// one at /bin/busybox): the binary and the two applets a holder runs, sh
// and sleep, nothing else. It is an image the operator trusts by
// construction, for Options.HolderImage. Its error says why when the
// binary is missing or not static.
func EnsureHolderImage(ctx context.Context, cli client.APIClient, busybox string) (string, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("holder image: %w", err)
	}
	if err := checkStatic(bin); err != nil {
		return "", fmt.Errorf("holder image: %s: %w", busybox, err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	if img, err := cli.ImageInspect(ctx, HolderImageName); err == nil && img.Config != nil && img.Config.Labels[labelHolderBusybox] == digest {
		return HolderImageName, nil
	}
	rootfs, err := holderRootFS(bin)
	if err != nil {
		return "", fmt.Errorf("holder image: %w", err)
	}
	resp, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, HolderImageName, image.ImportOptions{
		Message: "slipway network holder from " + busybox,
		Changes: []string{fmt.Sprintf("LABEL %s=%s", labelHolderBusybox, digest)},
	})
	if err != nil {
		return "", fmt.Errorf("holder image: import: %w", err)
	}
	defer resp.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp, io.Discard, 0, false, nil); err != nil {
		return "", fmt.Errorf("holder image: import: %w", err)
	}
	return HolderImageName, nil
}

// checkStatic fails for a binary that is not an ELF executable or needs
// a dynamic loader, which an image of nothing else would lack.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("not statically linked (install busybox-static)")
		}
	}
	return nil
}

// holderRootFS is the tar of a holder's file system.
func holderRootFS(busybox []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: now},
		{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(busybox)), ModTime: now},
		{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox", Mode: 0o777, ModTime: now},
		{Typeflag: tar.TypeSymlink, Name: "bin/sleep", Linkname: "busybox", Mode: 0o777, ModTime: now},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: now},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(busybox); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
