package monitor

import (
	"context"
	"sync"
	"time"

	"podpath/internal/diagnose"
	"podpath/internal/model"
)

// factsTimeout bounds one reading of Calico's state (BIRD's socket,
// Felix's health endpoint; each has its own shorter bound too).
const factsTimeout = 30 * time.Second

// factsState is what the host agent last read about Calico on its node.
type factsState struct {
	mu              sync.Mutex
	read            bool
	bgpDown         int // BGP sessions not Established
	calicoUnhealthy int // 1: Felix answers not ready, or BIRD runs and Felix does not answer
}

// update reads the node's Calico state once.
func (f *factsState) update(ctx context.Context, collect func(context.Context) model.Calico) {
	ctx, cancel := context.WithTimeout(ctx, factsTimeout)
	defer cancel()
	c := collect(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read = true
	f.bgpDown, f.calicoUnhealthy = calicoTrouble(c)
}

// calicoTrouble reads the node's Calico state as the doctor's rules do: a
// BGP session that is not Established; Felix not ready. A node without
// BIRD's socket and without Felix's endpoint runs no calico-node at all
// (another CNI, or the VXLAN-only install without BIRD) and is not counted.
func calicoTrouble(c model.Calico) (bgpDown, unhealthy int) {
	if c.BIRD.Error == "" {
		for _, p := range c.BIRD.Protocols {
			if p.Proto == "BGP" && !p.Established() {
				bgpDown++
			}
		}
	}
	switch {
	case c.Felix.StatusCode != 0 && !c.Felix.Ready:
		unhealthy = 1
	case c.Felix.StatusCode == 0 && c.BIRD.Error == "":
		unhealthy = 1 // BIRD runs, Felix does not answer
	}
	return bgpDown, unhealthy
}

func (f *factsState) findings() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.read {
		return nil
	}
	return map[string]int{diagnose.BGPSessionDown: f.bgpDown, diagnose.CalicoNodeUnhealthy: f.calicoUnhealthy}
}
