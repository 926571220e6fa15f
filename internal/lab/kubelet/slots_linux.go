package kubelet

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"podpath/internal/lab"
)

// slots hands out the lab's Pod namespaces: each is one Pod sandbox, with
// its address from the node's block already wired, so a Pod-network Pod
// takes a free one as a kubelet's CNI call would create one.
type slots struct {
	mu    sync.Mutex
	used  map[string]types.UID // by Pod namespace name
	freed chan struct{}        // closed (and replaced) whenever a slot frees up
}

func newSlots() *slots {
	return &slots{used: map[string]types.UID{}, freed: make(chan struct{})}
}

// acquire gives uid a free Pod namespace of n (the one it already holds, if
// any). When there is none, it returns a channel that closes when one
// frees: taken under the same lock, so no release between is missed.
func (s *slots) acquire(n *lab.Node, uid types.UID) (lab.Pod, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range n.Pods {
		if s.used[p.Netns] == uid {
			return p, true, nil
		}
	}
	for _, p := range n.Pods {
		if _, taken := s.used[p.Netns]; !taken {
			s.used[p.Netns] = uid
			return p, true, nil
		}
	}
	return lab.Pod{}, false, s.freed
}

// release frees uid's Pod namespace, if it holds one.
func (s *slots) release(netns string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used[netns] != uid {
		return
	}
	delete(s.used, netns)
	close(s.freed)
	s.freed = make(chan struct{})
}
