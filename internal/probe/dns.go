package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Bounds of a DNS query.
const (
	// DNSTimeout is one query's wait for its answer, over UDP per attempt
	// and over TCP for the whole exchange: the resolvers Pods use (glibc,
	// musl) give up on a server after 5 s; a healthy cluster answers in
	// milliseconds.
	DNSTimeout = 2 * time.Second
	// DNSAttempts: a UDP query is sent this often before it counts as
	// lost, as a resolver retries (one lost datagram is no failure).
	DNSAttempts = 2
	// DNSBufSize is the EDNS0 UDP payload size the queries offer: what
	// glibc and CoreDNS's forward plugin offer, so an answer up to it comes
	// over UDP in one datagram, fragmented by IP when the path needs it.
	DNSBufSize = 4096
	// MaxDNSAnswer bounds what a TCP answer may be: a DNS message's length
	// field cannot say more.
	MaxDNSAnswer = 65535
)

// DNSQuery is one question to ask a DNS server.
type DNSQuery struct {
	Name string `json:"name"`          // fully qualified, with or without the final dot
	Type string `json:"type"`          // A or AAAA
	TCP  bool   `json:"tcp,omitempty"` // over TCP (RFC 7766 framing) rather than UDP
}

// DNSResult is what one query brought back.
type DNSResult struct {
	DNSQuery
	// Bytes is the answer's DNS message size: over UDP one datagram, larger
	// than the path's MTU when IP had to fragment it.
	Bytes     int     `json:"bytes,omitempty"`
	Records   int     `json:"records,omitempty"` // answer records of the asked type
	Rcode     string  `json:"rcode,omitempty"`   // NOERROR, NXDOMAIN, SERVFAIL, …
	Truncated bool    `json:"truncated,omitempty"`
	RTTMs     float64 `json:"rttMs,omitempty"`
	Attempts  int     `json:"attempts,omitempty"` // UDP datagrams sent
	// Error says why no answer came: "timeout", "refused" (ICMP port
	// unreachable, or a TCP reset), or what else went wrong.
	Error string `json:"error,omitempty"`
}

// OK: the server answered the question without error and with records.
func (r DNSResult) OK() bool {
	return r.Error == "" && r.Rcode == "NOERROR" && r.Records > 0 && !r.Truncated
}

// QueryDNS asks server (IP:port) q through dial, with DNSAttempts over
// UDP or once over TCP, each bounded by DNSTimeout.
func QueryDNS(ctx context.Context, dial Dialer, server string, q DNSQuery) DNSResult {
	res := DNSResult{DNSQuery: q}
	t, err := qtype(q.Type)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	name, err := dnsmessage.NewName(fqdn(q.Name))
	if err != nil {
		res.Error = fmt.Sprintf("name %q: %v", q.Name, err)
		return res
	}
	id := uint16(rand.Uint32())
	msg, err := query(id, name, t)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	start := time.Now()
	var answer []byte
	if q.TCP {
		answer, err = exchangeTCP(ctx, dial, server, msg)
	} else {
		answer, res.Attempts, err = exchangeUDP(ctx, dial, server, msg, id)
	}
	if err != nil {
		res.Error = dnsError(err)
		return res
	}
	res.RTTMs = float64(time.Since(start).Microseconds()) / 1000
	res.Bytes = len(answer)
	if err := read(&res, answer, id, t); err != nil {
		res.Error = err.Error()
	}
	return res
}

func qtype(s string) (dnsmessage.Type, error) {
	switch s {
	case "A", "":
		return dnsmessage.TypeA, nil
	case "AAAA":
		return dnsmessage.TypeAAAA, nil
	}
	return 0, fmt.Errorf("query type %q: A or AAAA", s)
}

func fqdn(name string) string {
	if name == "" || name[len(name)-1] != '.' {
		return name + "."
	}
	return name
}

// query is a recursive question for name with an EDNS0 record offering
// DNSBufSize, as a stub resolver sends it.
func query(id uint16, name dnsmessage.Name, t dnsmessage.Type) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: name, Type: t, Class: dnsmessage.ClassINET}); err != nil {
		return nil, fmt.Errorf("build the query: %w", err)
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(DNSBufSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, err
	}
	if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
		return nil, fmt.Errorf("build the query: %w", err)
	}
	return b.Finish()
}

// exchangeUDP sends msg up to DNSAttempts times and returns the first
// datagram that answers it (same ID), with how many were sent.
func exchangeUDP(ctx context.Context, dial Dialer, server string, msg []byte, id uint16) ([]byte, int, error) {
	cctx, cancel := context.WithTimeout(ctx, DNSTimeout)
	c, err := dial(cctx, "udp", server)
	cancel()
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	buf := make([]byte, MaxDNSAnswer)
	var last error
	for attempt := 1; attempt <= DNSAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, attempt - 1, err
		}
		if _, err := c.Write(msg); err != nil {
			return nil, attempt, err
		}
		deadline := time.Now().Add(DNSTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(buf)
			if err != nil {
				last = err
				break
			}
			// A late answer to the first attempt answers the second as well:
			// the same question, the same ID.
			if n >= 2 && binary.BigEndian.Uint16(buf) == id {
				return append([]byte(nil), buf[:n]...), attempt, nil
			}
		}
		var ne net.Error
		if !errors.As(last, &ne) || !ne.Timeout() {
			return nil, attempt, last
		}
	}
	return nil, DNSAttempts, last
}

// exchangeTCP sends msg with its two-byte length and reads the answer
// the same way, within DNSTimeout.
func exchangeTCP(ctx context.Context, dial Dialer, server string, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, DNSTimeout)
	defer cancel()
	c, err := dial(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	if _, err := c.Write(out); err != nil {
		return nil, err
	}
	var size [2]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	answer := make([]byte, binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(c, answer); err != nil {
		return nil, fmt.Errorf("read the answer's %d bytes: %w", len(answer), err)
	}
	return answer, nil
}

// read fills res from the answer to the question of this id and type.
func read(res *DNSResult, answer []byte, id uint16, t dnsmessage.Type) error {
	var p dnsmessage.Parser
	h, err := p.Start(answer)
	if err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	if h.ID != id || !h.Response {
		return errors.New("malformed answer: not a response to the query")
	}
	res.Rcode = rcodeName(h.RCode)
	res.Truncated = h.Truncated
	if err := p.SkipAllQuestions(); err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed answer: %w", err)
		}
		if rh.Type == t {
			res.Records++
		}
		if err := p.SkipAnswer(); err != nil {
			return fmt.Errorf("malformed answer: %w", err)
		}
	}
}

// rcodeName is the rcode as dig prints it.
func rcodeName(c dnsmessage.RCode) string {
	switch c {
	case dnsmessage.RCodeSuccess:
		return "NOERROR"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("RCODE%d", c)
}

// dnsError words why no answer came, as an operator reads it.
func dnsError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the answer"
	}
	return err.Error()
}
