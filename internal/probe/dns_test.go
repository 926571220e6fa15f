package probe

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer answers A questions on loopback over UDP and TCP with n
// records each (a stand-in for CoreDNS in the client's unit test; the
// end-to-end tests ask a real CoreDNS). With drop set it reads UDP
// queries and answers none.
type dnsServer struct {
	udp      *net.UDPConn
	tcp      net.Listener
	records  int
	drop     bool
	received atomic.Int32
}

func startDNS(t *testing.T, records int, drop bool) *dnsServer {
	t.Helper()
	u, l := listenPair(t)
	s := &dnsServer{udp: u, tcp: l, records: records, drop: drop}
	t.Cleanup(func() { u.Close(); l.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.received.Add(1)
			if s.drop {
				continue
			}
			if out, err := s.answer(buf[:n]); err == nil {
				_, _ = u.WriteToUDP(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var size [2]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out, err := s.answer(q)
				if err != nil {
					return
				}
				binary.BigEndian.PutUint16(size[:], uint16(len(out)))
				_, _ = c.Write(append(size[:], out...))
			}()
		}
	}()
	return s
}

// listenPair binds UDP and TCP on one loopback port, as a DNS server
// does. The port UDP got may be taken for TCP by another test's
// connection (CI saw "address already in use"), so it tries again on
// another port a bounded number of times.
func listenPair(t *testing.T) (*net.UDPConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", u.LocalAddr().String())
		if err == nil {
			return u, l
		}
		u.Close()
		lastErr = err
	}
	t.Fatalf("no loopback port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

func (s *dnsServer) addr() string { return s.udp.LocalAddr().String() }

func (s *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for i := range s.records {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5},
			dnsmessage.AResource{A: [4]byte{192, 0, 2, byte(i)}})
	}
	return b.Finish()
}

func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func TestQueryDNS(t *testing.T) {
	ctx := context.Background()
	small := startDNS(t, 1, false)
	large := startDNS(t, 200, false)
	for _, tcp := range []bool{false, true} {
		r := QueryDNS(ctx, loopbackDial, small.addr(), DNSQuery{Name: "kubernetes.default.svc.cluster.local", TCP: tcp})
		if !r.OK() || r.Records != 1 || r.Rcode != "NOERROR" || r.Bytes < 50 {
			t.Errorf("small answer, tcp=%v: %+v", tcp, r)
		}
		// 200 A records: over 3,000 bytes, one UDP datagram up to the
		// 4,096 bytes EDNS0 offers.
		r = QueryDNS(ctx, loopbackDial, large.addr(), DNSQuery{Name: "big.example.", TCP: tcp})
		if !r.OK() || r.Records != 200 || r.Bytes < 3000 {
			t.Errorf("large answer, tcp=%v: %+v", tcp, r)
		}
	}
}

func TestQueryDNSLost(t *testing.T) {
	ctx := context.Background()
	mute := startDNS(t, 1, true)
	r := QueryDNS(ctx, loopbackDial, mute.addr(), DNSQuery{Name: "a.example"})
	if r.OK() || r.Error != "timeout" || r.Attempts != DNSAttempts || mute.received.Load() != DNSAttempts {
		t.Errorf("a server that answers nothing: %+v, %d queries arrived", r, mute.received.Load())
	}
	// Its TCP side answers: the same server, UDP lost, TCP fine.
	if r := QueryDNS(ctx, loopbackDial, mute.addr(), DNSQuery{Name: "a.example", TCP: true}); !r.OK() {
		t.Errorf("TCP beside lost UDP: %+v", r)
	}
	// Nobody listens: the kernel says so at once, over both transports.
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(l.LocalAddr().String())
	l.Close()
	for _, tcp := range []bool{false, true} {
		if r := QueryDNS(ctx, loopbackDial, closed.String(), DNSQuery{Name: "a.example", TCP: tcp}); r.Error != "refused" {
			t.Errorf("no server, tcp=%v: %+v", tcp, r)
		}
	}
	if r := QueryDNS(ctx, loopbackDial, closed.String(), DNSQuery{Name: "a.example", Type: "MX"}); r.Error == "" {
		t.Errorf("an MX question was sent: %+v", r)
	}
}
