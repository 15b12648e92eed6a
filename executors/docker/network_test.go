package docker

import (
	"context"
	"log/slog"
	"testing"

	"github.com/slipway-ci/slipway/executors/docker/dockertest"
)

// TestPoolWithoutHolder has a pool whose holder image is missing: a
// network given back is lent again without a holder, and the pool does
// not try again at once.
func TestPoolWithoutHolder(t *testing.T) {
	cli := dockertest.RequireDocker(t)
	ctx := context.Background()
	p := newNetPool(cli, slog.Default(), 1, "slipway-no-such-image:none")
	defer func() {
		if err := p.close(ctx); err != nil {
			t.Error(err)
		}
	}()
	l, err := p.lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.release(ctx, l.network, true)
	p.warmers.Wait()
	again, err := p.lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again != (lendable{network: l.network}) {
		t.Errorf("lent %+v, want the network %s without a holder", again, l.network)
	}
	p.release(ctx, again.network, true)
	p.mu.Lock()
	warming := p.warming
	p.mu.Unlock()
	if warming != 0 {
		t.Error("the pool tried the missing image again at once")
	}
}
