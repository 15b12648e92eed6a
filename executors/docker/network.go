package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// LabelPool marks the bridge networks of an executor's pool; its value
// identifies the executor, so that one starting after a crash can tell
// the dead process's networks from its own.
const LabelPool = "org.slipway.pool"

// DefaultNetworkPool is Options.NetworkPool when zero: the engine's
// default parallelism.
const DefaultNetworkPool = 4

// netPool lends each attempt a bridge network that no other running
// attempt uses, and keeps it for a later attempt once the first is over:
// creating and removing a network cost 0.2 to 0.5 s a job, as much as
// the rest of a one-step job.
//
// What it defends: jobs of different pipelines never share a network at
// the same time, so a job cannot reach another's services. A network is
// handed out only when the engine says no container is attached to it,
// and goes back to the pool only when every container of the attempt
// that had it was removed. A later attempt on the same network finds
// nothing of the earlier one's on it: no container, so no service to
// reach and no name in the network's DNS.
type netPool struct {
	client client.APIClient
	log    *slog.Logger
	id     string // LabelPool value and name prefix of this pool's networks
	size   int    // idle networks kept; more are created as needed and removed after

	mu     sync.Mutex
	swept  bool     // leftovers of other pools removed
	idle   []string // network IDs free to lend
	n      int      // networks created, for their names
	closed bool
}

func newNetPool(c client.APIClient, log *slog.Logger, size int) *netPool {
	b := make([]byte, 4)
	rand.Read(b)
	return &netPool{client: c, log: log, id: hex.EncodeToString(b), size: size}
}

// lease returns the ID of a network for one attempt: an idle one of the
// pool, or a new one.
func (p *netPool) lease(ctx context.Context) (string, error) {
	p.mu.Lock()
	sweep := !p.swept
	p.swept = true
	p.mu.Unlock()
	if sweep {
		p.sweep(ctx)
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return "", errors.New("network pool: executor closed")
		}
		if len(p.idle) == 0 {
			p.n++
			name := "slipway-pool-" + p.id + "-" + strconv.Itoa(p.n)
			p.mu.Unlock()
			net, err := p.client.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: map[string]string{LabelPool: p.id}})
			if err != nil {
				return "", fmt.Errorf("create network: %w", err)
			}
			return net.ID, nil
		}
		id := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		// Checked now rather than trusted from the release: the network
		// may have been removed by hand or by another executor's sweep,
		// and a container nobody recorded must not meet a new job.
		n, err := p.client.NetworkInspect(ctx, id, network.InspectOptions{})
		if err == nil && len(n.Containers) == 0 {
			return id, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("network pool: %w", ctx.Err())
		}
		p.log.Warn("network pool: not lending a network", "network", id, "containers", len(n.Containers), "err", err)
		p.remove(ctx, id)
	}
}

// release takes back the network of an attempt whose containers are
// gone (clean) or may not be (!clean); one that is not clean, or that the
// pool has no room for, is removed.
func (p *netPool) release(ctx context.Context, id string, clean bool) {
	p.mu.Lock()
	if clean && !p.closed && len(p.idle) < p.size {
		p.idle = append(p.idle, id)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.remove(ctx, id)
}

// close removes the idle networks; those lent out are removed when their
// attempts release them.
func (p *netPool) close(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for _, id := range idle {
		if err := p.client.NetworkRemove(ctx, id); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove network: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *netPool) remove(ctx context.Context, id string) {
	if err := p.client.NetworkRemove(ctx, id); err != nil && !client.IsErrNotFound(err) {
		// Its pool's label leads the next executor's sweep to it.
		p.log.Warn("network pool: remove network", "network", id, "err", err)
	}
}

// sweep removes the networks that other pools left: those of a process
// that died without closing its executor. The engine refuses to remove
// one that containers still use, so a live executor's busy networks
// survive; its idle ones do not, and it creates others when it finds
// them gone. One executor per engine avoids that churn.
func (p *netPool) sweep(ctx context.Context) {
	nets, err := p.client.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelPool))})
	if err != nil {
		p.log.Warn("network pool: list leftovers", "err", err)
		return
	}
	for _, n := range nets {
		if n.Labels[LabelPool] == p.id {
			continue
		}
		if err := p.client.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
			p.log.Info("network pool: leftover network kept", "network", n.Name, "err", err)
		}
	}
}
