package agent

import (
	"net"
	"net/netip"

	"podpath/internal/probe"
)

// Reachability is decided by a burst of reachEchoes small echoes and, only
// when all of them are lost, a second burst of reachRetryEchoes. At 30% loss
// one way the first burst alone is all lost for one pair in 400, which a
// doctor run over a few nodes meets every few runs; both bursts, once in 70
// million. A healthy path pays for the first burst only, a cut one waits out
// a second ProbeTimeout, and no responder is sent more than the first burst
// by every peer at once.
const (
	reachEchoes      = 5
	reachRetryEchoes = 10
)

// source is the address the agent sends to peer from: its own listen
// address when it listens on a specific one of peer's family, so that
// peers (whose budgets and caps go by source address) know it on a host
// with several addresses; otherwise none, and the kernel picks. A loopback
// address sends only to loopback (the kernel refuses it anywhere else).
func (a *Agent) source(peer netip.Addr) netip.Addr {
	local, peer := a.ports.localIP(), peer.Unmap()
	if !local.IsValid() || local.Is4() != peer.Is4() || local.IsLoopback() != peer.IsLoopback() {
		return netip.Addr{}
	}
	return local
}

// dialer opens TCP connections to peer, from source(peer) when the agent
// dials plainly (a test's or the Pod proxy's dialer is left as it is).
func (a *Agent) dialer(peer netip.Addr) probe.Dialer {
	local := a.source(peer)
	if !a.ports.plainDial || !local.IsValid() {
		return a.cfg.Dial
	}
	return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}).DialContext
}

// addrOf is p's IP; the zero address when p's address does not parse
// (refused when the peers were set).
func addrOf(p Peer) netip.Addr {
	ap, err := netip.ParseAddrPort(p.Address)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
