package monitor

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"podpath/internal/probe"
)

// UDPProber visits peers with podpath's UDP probes: one small echo for
// reachability and round trip, then, if it came back, the full-size echo
// with Don't Fragment set (the path-MTU check), and a byte-exact search
// only when that is lost.
type UDPProber struct{}

// errProber is why the monitor cannot probe here: nil on Linux.
var errProber error

// Probe implements Prober.
func (UDPProber) Probe(ctx context.Context, p Peer, last *MTUResult, search bool) Result {
	r := Result{At: time.Now()}
	addr, err := netip.ParseAddrPort(p.Address)
	if err != nil {
		r.Err = fmt.Sprintf("peer %s: address %q: %v", p.Name, p.Address, err)
		return r
	}
	conn, err := probe.Dial(ctx, addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer conn.Close()
	st, err := conn.Ping(ctx, 1, 0, 0)
	if err != nil {
		r.Err = err.Error()
	}
	r.Sent = st.Sent > 0
	if st.Received == 0 {
		return r
	}
	r.Answered, r.RTT = true, time.Duration(st.MinMs*float64(time.Millisecond))
	iface, err := conn.InterfaceMTU()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	sizes := []int{iface}
	known := last != nil && last.IfaceMTU == iface && last.PathMTU > 0 && last.PathMTU < iface
	if known {
		sizes = append(sizes, last.PathMTU)
	}
	rr, err := conn.Round(ctx, sizes, probe.AttemptsInRound)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	switch {
	case rr.Acked[iface]:
		r.MTU = &MTUResult{IfaceMTU: iface, PathMTU: iface, Limit: "none"}
	case known && !search && rr.Acked[last.PathMTU]:
		// Same limit as last time: no need to search the bytes again.
		m := *last
		m.Searched = false
		r.MTU = &m
	default:
		res, err := probe.SearchPMTU(ctx, conn, probe.MinProbeSize(conn.V6()), iface)
		if err != nil {
			r.Err = fmt.Sprintf("path MTU to %s: %v", p.Name, err)
			return r
		}
		r.MTU = &MTUResult{IfaceMTU: iface, PathMTU: res.PathMTU, Limit: res.Limit, Searched: true}
	}
	return r
}
