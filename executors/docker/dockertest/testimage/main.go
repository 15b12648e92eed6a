// Command testimage builds slipway's offline test image
// (slipway-test-busybox:latest, from Debian's busybox-static) in the
// Docker engine of the environment, for running the seed pipeline with
// `slipway run --executor docker` on a machine without a registry.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/executors/docker/dockertest"
)

func main() {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		err = dockertest.EnsureImage(context.Background(), cli)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
	fmt.Println(dockertest.Image)
}
