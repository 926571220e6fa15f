package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMPPing sends count ICMP echo requests of IP size bytes to addr, interval
// apart. It uses an unprivileged ping socket when net.ipv4.ping_group_range
// allows it, a raw socket otherwise (root). A blocked ICMP is a result
// (100% loss), not an error.
func ICMPPing(ctx context.Context, addr netip.Addr, count int, interval time.Duration, size int) (Stats, error) {
	v6 := addr.Is6() && !addr.Is4In6()
	proto, echo, reply, hdr := 1, icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), IPv4Header
	dgram, raw, any := "udp4", "ip4:icmp", "0.0.0.0"
	if v6 {
		proto, echo, reply, hdr = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, IPv6Header
		dgram, raw, any = "udp6", "ip6:ipv6-icmp", "::"
	}
	pc, err := icmp.ListenPacket(dgram, any)
	isRaw := false
	if err != nil {
		if pc, err = icmp.ListenPacket(raw, any); err != nil {
			return Stats{}, fmt.Errorf("open ICMP socket (needs ping_group_range or root): %w", err)
		}
		isRaw = true
	}
	defer pc.Close()
	var dst net.Addr = &net.UDPAddr{IP: addr.AsSlice()}
	if isRaw {
		dst = &net.IPAddr{IP: addr.AsSlice()}
	}
	// A ping socket rewrites the ID and gets only its own replies. A raw
	// socket gets every echo reply the host receives, so several series at
	// once (one per peer) must tell theirs apart: a random ID per series,
	// and the reply's source.
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(idb[0])<<8 | int(idb[1])
	payload := make([]byte, max(size-hdr-8, 8))
	sentAt := map[int]time.Time{}
	var rtts []time.Duration
	got := map[int]bool{}
	rbuf := make([]byte, 65536)
	read := func(until time.Time) {
		for len(got) < len(sentAt) {
			_ = pc.SetReadDeadline(until)
			n, from, err := pc.ReadFrom(rbuf)
			if err != nil {
				return
			}
			if src := senderIP(from); src.IsValid() && src != addr.Unmap() {
				continue // another series' reply
			}
			m, err := icmp.ParseMessage(proto, rbuf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || (isRaw && e.ID != id) {
				continue
			}
			if t, ok := sentAt[e.Seq]; ok && !got[e.Seq] {
				got[e.Seq] = true
				rtts = append(rtts, time.Since(t))
			}
		}
	}
	for seq := range count {
		if seq > 0 {
			read(time.Now().Add(interval))
			if err := ctx.Err(); err != nil {
				break
			}
		}
		msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return Stats{}, err
		}
		sentAt[seq] = time.Now()
		if _, err := pc.WriteTo(b, dst); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			delete(sentAt, seq)
			continue // e.g. EPERM from a local firewall: that echo is lost
		}
	}
	read(time.Now().Add(ProbeTimeout))
	return Summarize(rtts, count), nil
}
