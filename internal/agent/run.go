//go:build linux

package agent

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"podpath/internal/probe"
)

// run probes every peer as req asks: path MTU, echoes and TCP checks for
// all peers at once (bounded), then throughput one peer at a time so the
// streams do not share the link with each other.
func (a *Agent) run(ctx context.Context, peers []Peer, req *ProbeRequest) []TargetResult {
	results := make([]TargetResult, len(peers))
	parallel := req.Parallel
	if parallel == 0 {
		parallel = MaxParallel
	}
	sem := make(chan struct{}, parallel)
	// The cheap check's sockets go from peer to peer (Redial): at most
	// one per peer probed at once.
	spare := make(chan *probe.Conn, parallel)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			sem <- struct{}{}
			// A peer that did not answer the cheap round gives its slot
			// back: what is left for it (echo bursts, a TCP handshake) is
			// waiting out timeouts, no load, and a node cut off from its
			// peers would otherwise wait them out parallel at a time
			// (about 5 s each: 59 peers of a 60-node cluster took the
			// doctor's minute).
			release := sync.OnceFunc(func() { <-sem })
			defer release()
			if len(req.DNS) > 0 {
				results[i] = a.askDNS(ctx, p, req.DNS)
				return
			}
			// Ports alongside, and whether or not the agent's own port
			// answers: a blocked probe port is no blocked 6443.
			var ports []probe.PortResult
			var pw sync.WaitGroup
			if len(req.Ports) > 0 {
				pw.Go(func() { ports = a.checkPeerPorts(ctx, p, req.Ports) })
			}
			var conn *probe.Conn
			select {
			case conn = <-spare:
			default:
			}
			results[i], conn = a.probeOne(ctx, p, req, conn, release)
			if conn != nil {
				select { // more than parallel may end at once once slots are given back
				case spare <- conn:
				default:
					conn.Close()
				}
			}
			pw.Wait()
			results[i].Ports = ports
		})
	}
	wg.Wait()
	for len(spare) > 0 {
		(<-spare).Close()
	}
	if t := req.Throughput; t != nil {
		for i, p := range peers {
			tp := probe.Throughput(ctx, a.dialer(addrOf(p)), p.Address, probe.SinkAuth{Token: a.cfg.Token, Peer: p.Name}, time.Duration(t.Seconds*float64(time.Second)), t.Streams)
			results[i].Throughput = &tp
		}
	}
	a.probes.Add(float64(len(peers)))
	return results
}

// askDNS asks the DNS server p the questions.
func (a *Agent) askDNS(ctx context.Context, p Peer, qs []probe.DNSQuery) TargetResult {
	res := TargetResult{Peer: p.Name, Address: p.Address}
	dial := a.dialer(addrOf(p))
	if local := a.source(addrOf(p)); a.ports.plainDial && local.IsValid() {
		// From the agent's own address, over UDP as over TCP.
		udp := (&net.Dialer{LocalAddr: &net.UDPAddr{IP: local.AsSlice()}}).DialContext
		tcp := dial
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if network == "udp" {
				return udp(ctx, network, addr)
			}
			return tcp(ctx, network, addr)
		}
	}
	// All at once, as a resolver asks A and AAAA side by side: a lost
	// answer costs its timeout once, not once per question after it.
	res.DNS = make([]probe.DNSResult, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() { res.DNS[i] = probe.QueryDNS(ctx, dial, p.Address, q) })
	}
	wg.Wait()
	for _, r := range res.DNS {
		res.Reachable = res.Reachable || r.Error == ""
	}
	return res
}

// probeOne probes p as req asks. For the cheap check it takes a socket
// of an earlier peer when given one (redialled to p, or closed) and hands
// its socket back for the next; otherwise it closes what it opened.
// waiting is called when what is left of a cheap check is waiting (the
// peer did not answer its round).
func (a *Agent) probeOne(ctx context.Context, p Peer, req *ProbeRequest, spare *probe.Conn, waiting func()) (TargetResult, *probe.Conn) {
	res := TargetResult{Peer: p.Name, Address: p.Address}
	fail := func(err error) { res.Errors = append(res.Errors, err.Error()) }
	addr, err := netip.ParseAddrPort(p.Address)
	conn := spare
	if conn != nil && (err != nil || !req.Cheap || conn.From() != a.source(addr.Addr()) || conn.Redial(addr) != nil) {
		conn.Close()
		conn = nil
	}
	if err != nil {
		fail(err)
		return res, nil
	}
	if conn == nil {
		if conn, err = probe.DialFrom(ctx, a.source(addr.Addr()), addr); err != nil {
			fail(err)
			return res, nil
		}
	}
	if req.Cheap {
		return a.probeConn(ctx, conn, p, addr, req, res, waiting), conn
	}
	defer conn.Close()
	return a.probeConn(ctx, conn, p, addr, req, res, waiting), nil
}

// probeConn is probeOne on an open socket.
func (a *Agent) probeConn(ctx context.Context, conn *probe.Conn, p Peer, addr netip.AddrPort, req *ProbeRequest, res TargetResult, waiting func()) TargetResult {
	fail := func(err error) { res.Errors = append(res.Errors, err.Error()) }
	// Reachability first: a burst of small echoes, so random loss does not
	// pass for a cut path (one answer is enough).
	rtt := req.RTT
	if req.Cheap {
		if res.FullSize, res.Reachable = cheapRound(ctx, conn, fail); !res.Reachable && waiting != nil {
			waiting()
		}
	}
	if !res.Reachable {
		reach, err := conn.Ping(ctx, reachEchoes, 0, 0)
		if reach.Received == 0 && err == nil && ctx.Err() == nil {
			reach, err = conn.Ping(ctx, reachRetryEchoes, 0, 0)
		}
		if err != nil {
			fail(err)
		}
		res.Reachable = reach.Received > 0
	}
	if !res.Reachable {
		res.PeerRefused = conn.PeerRefused()
		return a.probeUnreachable(ctx, p, addr, req, res)
	}
	if req.FullSize && res.FullSize == nil {
		res.FullSize = fullSize(ctx, conn, fail)
	}
	if req.PathMTU {
		m, err := conn.PathMTU(ctx)
		if err != nil {
			res.PathMTUError = err.Error()
		} else {
			if m.Limit == "silent" && m.PathMTU < m.IfaceMTU {
				// Larger packets vanish without a word: find the hop after
				// which they do (a few rounds, on this pair only).
				if loc, err := conn.Locate(ctx, m.PathMTU+1); err == nil {
					m.Where = &loc
				}
			}
			res.PathMTU = &m
		}
	}
	if rtt != nil {
		s, err := conn.Ping(ctx, rtt.Count, time.Duration(rtt.IntervalMs)*time.Millisecond, rtt.Size)
		if err != nil {
			fail(err)
		}
		res.RTT = &s
	}
	if s := req.ICMP; s != nil {
		st, err := probe.ICMPPing(ctx, addr.Addr(), s.Count, time.Duration(s.IntervalMs)*time.Millisecond, s.Size)
		if err != nil {
			fail(err)
		} else {
			res.ICMP = &st
		}
	}
	if req.TCPConnect > 0 {
		st := probe.ConnectTimes(ctx, a.dialer(addrOf(p)), p.Address, req.TCPConnect)
		res.TCPConnect = &st
	}
	if req.HTTP {
		h := probe.HTTPGet(ctx, a.dialer(addrOf(p)), "http://"+p.Address+"/healthz")
		res.HTTP = &h
	}
	if req.TransferBytes > 0 {
		t := probe.Upload(ctx, a.dialer(addrOf(p)), p.Address, probe.SinkAuth{Token: a.cfg.Token, Peer: p.Name}, req.TransferBytes, 0)
		res.Transfer = &t
	}
	return res
}

// probeUnreachable: no UDP echo came back, so series and transfers would
// only wait out their timeouts. One ICMP echo and one TCP handshake, at
// once, still tell "UDP blocked" from "nothing gets through".
func (a *Agent) probeUnreachable(ctx context.Context, p Peer, addr netip.AddrPort, req *ProbeRequest, res TargetResult) TargetResult {
	var wg sync.WaitGroup
	if req.ICMP != nil {
		wg.Go(func() {
			st, err := probe.ICMPPing(ctx, addr.Addr(), 1, 0, req.ICMP.Size)
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
				return
			}
			res.ICMP = &st
		})
	}
	if req.TCPConnect > 0 || req.HTTP || req.TransferBytes > 0 || req.Cheap {
		wg.Go(func() {
			st := probe.ConnectTimes(ctx, a.dialer(addrOf(p)), p.Address, 1)
			res.TCPConnect = &st
		})
	}
	wg.Wait()
	if req.RTT != nil {
		lost := probe.Summarize(nil, 1)
		res.RTT = &lost
	}
	return res
}

// fullSizeAttempts: a full-sized probe counts as lost only when every
// attempt is; the size search (PathMTU) confirms what this suggests.
const fullSizeAttempts = 3

// fullSize sends Don't-Fragment probes of the interface MTU towards the
// peer in one round: nil when the MTU cannot be read.
func fullSize(ctx context.Context, conn *probe.Conn, fail func(error)) *SizeCheck {
	mtu, err := conn.InterfaceMTU()
	if err != nil {
		fail(err)
		return nil
	}
	rr, err := conn.Round(ctx, []int{mtu}, fullSizeAttempts)
	if err != nil {
		fail(err)
		return nil
	}
	return &SizeCheck{Size: mtu, Crossed: rr.Acked[mtu], ICMPMTU: rr.ICMPMTU, LocalMTU: rr.LocalMTU}
}

// cheapAttempts: each size of the cheap round is sent this often. Once is
// enough: when both are lost the echo bursts decide reachability, and a
// full-sized packet lost once only makes the pair odd, which the doctor
// checks again and measures in depth before anything rests on it. Every
// responder meets this from every peer: each probe more is a million
// packets more on a 1,000-node cluster.
const cheapAttempts = 1

// cheapRound sends small and full-sized (the route's MTU towards the
// peer: what applications send) Don't-Fragment probes in one round: any answer makes the peer
// reachable, an answer of a full-sized one says it crosses. Nil when the
// MTU cannot be read. Not answered, the caller's echo bursts decide
// reachability: a round is no proof of a cut.
func cheapRound(ctx context.Context, conn *probe.Conn, fail func(error)) (*SizeCheck, bool) {
	mtu, err := conn.RouteMTU()
	if err != nil {
		fail(err)
		return nil, false
	}
	small := probe.MinProbeSize(conn.V6())
	rr, err := conn.Round(ctx, []int{small, mtu}, cheapAttempts)
	if err != nil {
		fail(err)
		return nil, false
	}
	return &SizeCheck{Size: mtu, Crossed: rr.Acked[mtu], ICMPMTU: rr.ICMPMTU, LocalMTU: rr.LocalMTU}, rr.Acked[small] || rr.Acked[mtu]
}
