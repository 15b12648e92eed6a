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
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// LabelPool marks the bridge networks of an executor's pool and the
// holders started on them; its value identifies the executor, so that
// one starting after a crash can tell the dead process's networks from
// its own.
const LabelPool = "org.slipway.pool"

// DefaultNetworkPool is Options.NetworkPool when zero: the engine's
// default parallelism.
const DefaultNetworkPool = 4

// holderTimeout bounds the start of one holder, which Close waits for.
const holderTimeout = 30 * time.Second

// netPool lends each attempt a bridge network that no other running
// attempt uses, and keeps it for a later attempt once the first is over:
// creating and removing a network cost 0.2 to 0.5 s a job, as much as
// the rest of a one-step job.
//
// When the executor has a holder image, an idle network comes with a
// holder: a container of that image already started on it, sleeping,
// whose network namespace the attempt's containers join. A container
// started on a user-defined bridge pays the engine's setup of its
// endpoint and embedded DNS, 0.1 to 0.2 s, and as much again to be
// removed; the holder paid the first while the pool was idle, and the
// attempt's primary, joining it, starts and goes as fast as one on the
// default bridge. A holder serves one attempt and is removed with it (its
// /etc/hosts, resolv.conf and address were that attempt's); the pool
// starts the next one in the background when the network comes back and
// no other attempt runs: under load it would only add work for the
// engine. The holder's image is the operator's, never a job's: the
// holder's process lives in the namespace of the next attempt, with its
// services on localhost, and must not be code of another pipeline.
//
// What it defends: jobs of different pipelines never share a network at
// the same time, so a job cannot reach another's services. A network is
// handed out only when the engine says no container but its own fresh
// holder is attached to it, and goes back to the pool only when every
// container of the attempt that had it, holder included, was removed.
// A later attempt on the same network finds nothing of the earlier
// one's on it: no container, so no service to reach and no name in the
// network's DNS.
type netPool struct {
	client client.APIClient
	log    *slog.Logger
	id     string // LabelPool value and name prefix of this pool's networks
	size   int    // idle networks kept; more are created as needed and removed after
	image  string // of holders; none when empty

	warmers sync.WaitGroup // holders being started; Close waits for them

	mu       sync.Mutex
	swept    bool       // leftovers of other pools removed
	idle     []lendable // networks free to lend
	lent     int        // networks lent to attempts
	warming  int        // networks whose holder is being started
	noHolder time.Time  // until when holders are not tried, after one failed
	n        int        // networks created, for their names
	closed   bool
}

// lendable is an idle network and its holder, if it has one.
type lendable struct{ network, holder string }

// holderRetry is how long the pool goes without holders after one
// failed to start: the image may be missing, or lack /bin/sh.
const holderRetry = time.Minute

func newNetPool(c client.APIClient, log *slog.Logger, size int, holderImage string) *netPool {
	b := make([]byte, 4)
	rand.Read(b)
	return &netPool{client: c, log: log, id: hex.EncodeToString(b), size: size, image: holderImage}
}

// lease returns a network for one attempt: an idle one of the pool, or
// a new one. The attempt owns the holder, if any, and removes it.
func (p *netPool) lease(ctx context.Context) (lendable, error) {
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
			return lendable{}, errors.New("network pool: executor closed")
		}
		if len(p.idle) == 0 {
			// Even when a network's holder is about to be ready: jobs
			// that follow each other closely then take turns on two
			// networks, one warming while the other is used, rather
			// than each waiting for its holder.
			p.n++
			name := "slipway-pool-" + p.id + "-" + strconv.Itoa(p.n)
			p.mu.Unlock()
			// A cancellation must not cut the request short: the engine
			// may create the network all the same, and nobody would
			// know to remove it.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holderTimeout)
			net, err := p.client.NetworkCreate(cctx, name, network.CreateOptions{Driver: "bridge", Labels: map[string]string{LabelPool: p.id, LabelOwner: owner}})
			cancel()
			if err != nil {
				return lendable{}, fmt.Errorf("create network: %w", err)
			}
			p.mu.Lock()
			p.lent++
			p.mu.Unlock()
			if ctx.Err() != nil {
				// Never used: back to the pool, or removed if it is closed.
				p.release(context.WithoutCancel(ctx), net.ID, true)
				return lendable{}, fmt.Errorf("network pool: %w", ctx.Err())
			}
			return lendable{network: net.ID}, nil
		}
		l := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		// Checked now rather than trusted from the release: the network
		// may have been removed by hand or by another executor's sweep,
		// and a container nobody recorded must not meet a new job.
		n, err := p.client.NetworkInspect(ctx, l.network, network.InspectOptions{})
		if err == nil {
			_, held := n.Containers[l.holder]
			switch {
			case len(n.Containers) == 0 && l.holder != "":
				// The holder stopped, and left the network.
				p.removeHolder(ctx, l.holder)
				l.holder = ""
				fallthrough
			case len(n.Containers) == 0 || len(n.Containers) == 1 && held:
				p.mu.Lock()
				p.lent++
				p.mu.Unlock()
				return l, nil
			}
		}
		if ctx.Err() != nil {
			// Not looked at, so neither lent nor judged.
			p.mu.Lock()
			closed := p.closed
			if !closed {
				p.idle = append(p.idle, l)
			}
			p.mu.Unlock()
			if closed {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holderTimeout)
				p.removeHolder(ctx, l.holder)
				p.remove(ctx, l.network)
				cancel()
			}
			return lendable{}, fmt.Errorf("network pool: %w", ctx.Err())
		}
		p.log.Warn("network pool: not lending a network", "network", l.network, "containers", len(n.Containers), "err", err)
		p.removeHolder(ctx, l.holder)
		p.remove(ctx, l.network)
	}
}

// release takes back the network of an attempt whose containers are
// gone (clean) or may not be (!clean); one that is not clean, or that the
// pool has no room for, is removed. A network kept may get a holder,
// started in the background.
func (p *netPool) release(ctx context.Context, id string, clean bool) {
	p.mu.Lock()
	p.lent--
	if clean && !p.closed && len(p.idle)+p.warming < p.size {
		// A holder is one more container for the engine to start and
		// remove: it saves an attempt time only when started while the
		// engine idles, which this pool knows of only when none of its
		// attempts runs. Under load, attempts go on the network itself.
		if p.image == "" || time.Now().Before(p.noHolder) || p.lent > 0 {
			p.idle = append(p.idle, lendable{network: id})
			p.mu.Unlock()
			return
		}
		p.warming++
		p.warmers.Add(1)
		p.mu.Unlock()
		go p.warm(id) // returns within holderTimeout; Close waits for it
		return
	}
	p.mu.Unlock()
	p.remove(ctx, id)
}

// warm starts a holder on network id and makes the network lendable.
func (p *netPool) warm(id string) {
	defer p.warmers.Done()
	ctx, cancel := context.WithTimeout(context.Background(), holderTimeout)
	defer cancel()
	holder, err := p.startHolder(ctx, id)
	p.mu.Lock()
	if err != nil {
		p.noHolder = time.Now().Add(holderRetry)
		p.log.Warn("network pool: no holder", "image", p.image, "retry", holderRetry, "err", err)
	}
	p.warming--
	closed := p.closed
	if !closed {
		p.idle = append(p.idle, lendable{network: id, holder: holder})
	}
	p.mu.Unlock()
	if closed {
		p.removeHolder(ctx, holder)
		p.remove(ctx, id)
	}
}

// startHolder starts a container that sleeps on network id; the pool's
// label lets the next executor's sweep find it should this process die.
func (p *netPool) startHolder(ctx context.Context, id string) (string, error) {
	cfg := &container.Config{Image: p.image, Entrypoint: keepAlive, Labels: map[string]string{LabelPool: p.id, LabelOwner: owner}}
	c, err := p.client.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: container.NetworkMode(id)}, nil, nil, "")
	if err != nil {
		return "", err
	}
	if err := p.client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		p.removeHolder(ctx, c.ID)
		return "", err
	}
	return c.ID, nil
}

// close removes the idle networks and their holders, once those being
// started are; networks lent out are removed when their attempts
// release them.
func (p *netPool) close(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	p.warmers.Wait()
	var errs []error
	for _, l := range idle {
		if l.holder != "" {
			if err := p.client.ContainerRemove(ctx, l.holder, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
				errs = append(errs, fmt.Errorf("docker: remove holder: %w", err))
			}
		}
		if err := p.client.NetworkRemove(ctx, l.network); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove network: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *netPool) removeHolder(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if err := p.client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
		// Its pool's label leads the next executor's sweep to it.
		p.log.Warn("network pool: remove holder", "container", id, "err", err)
	}
}

func (p *netPool) remove(ctx context.Context, id string) {
	if err := p.client.NetworkRemove(ctx, id); err != nil && !client.IsErrNotFound(err) {
		// Its pool's label leads the next executor's sweep to it.
		p.log.Warn("network pool: remove network", "network", id, "err", err)
	}
}

// sweep removes the networks and holders that other pools left: those
// of a process that died without closing its executor (see orphaned). A
// holder that an attempt's container joined is kept, and so is its
// network, which the engine refuses to remove while a container uses it.
func (p *netPool) sweep(ctx context.Context) {
	f := filters.NewArgs(filters.Arg("label", LabelPool))
	holders, err := p.client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		p.log.Warn("network pool: list leftover holders", "err", err)
		return
	}
	joined, err := sweepAttempts(ctx, p.client, p.log)
	if err != nil {
		return
	}
	for _, h := range holders {
		if h.Labels[LabelPool] == p.id || joined[h.ID] || !orphaned(h.Labels) {
			continue
		}
		p.removeHolder(ctx, h.ID)
	}
	nets, err := p.client.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		p.log.Warn("network pool: list leftovers", "err", err)
		return
	}
	for _, n := range nets {
		if n.Labels[LabelPool] == p.id || !orphaned(n.Labels) {
			continue
		}
		if err := p.client.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
			p.log.Info("network pool: leftover network kept", "network", n.Name, "err", err)
		}
	}
}

// sweepAttempts removes the containers of attempts whose process died (a
// `slipway run` killed mid-job, see orphaned): no engine will ask for
// their cleanup. It returns the containers whose network namespace the
// attempts' containers that remain joined: holders still in use.
func sweepAttempts(ctx context.Context, cli client.APIClient, log *slog.Logger) (joined map[string]bool, err error) {
	attempts, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelAttempt))})
	if err != nil {
		log.Warn("sweep: list attempts' containers", "err", err)
		return nil, err
	}
	joined = map[string]bool{}
	for _, c := range attempts {
		if o := c.Labels[LabelOwner]; o != "" && o != owner && orphaned(c.Labels) {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !client.IsErrNotFound(err) {
				log.Warn("sweep: remove a dead process's container", "container", c.ID, "err", err)
			}
			continue
		}
		if m := container.NetworkMode(c.HostConfig.NetworkMode); m.IsContainer() {
			joined[m.ConnectedContainer()] = true
		}
	}
	return joined, nil
}
