package calico

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"podpath/internal/model"
)

// BIRDTimeout bounds a control-socket exchange, as calicoctl node status
// bounds its read (2 s).
const BIRDTimeout = 2 * time.Second

// Protocol is one line of BIRD's `show protocols` (model.BIRDProtocol).
type Protocol = model.BIRDProtocol

// MeshPeerName is the name calico-node gives the BIRD protocol of a
// node-to-node mesh peer: Mesh_ and the address with . or : as _.
func MeshPeerName(a netip.Addr) string {
	return "Mesh_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}

// ShowProtocols asks the BIRD behind socket for `show protocols`.
func ShowProtocols(ctx context.Context, socket string) ([]Protocol, error) {
	ctx, cancel := context.WithTimeout(ctx, BIRDTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to BIRD at %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	if _, err := readReply(r); err != nil { // the 0001 welcome
		return nil, fmt.Errorf("read BIRD greeting from %s: %w", socket, err)
	}
	if _, err := conn.Write([]byte("show protocols\n")); err != nil {
		return nil, fmt.Errorf("send to BIRD at %s: %w", socket, err)
	}
	reply, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("read BIRD reply from %s: %w", socket, err)
	}
	return ParseProtocols(reply)
}

// readReply reads one reply: lines up to one whose 4-digit code is followed
// by a space rather than '-'.
func readReply(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if len(line) >= 5 && isCode(line[:4]) && line[4] == ' ' {
			return b.String(), nil
		}
	}
}

func isCode(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) == 4
}

var sinceToken = regexp.MustCompile(`^[0-9][0-9:.\-]*$`)

// ParseProtocols reads the reply to `show protocols` from BIRD 1.x (as
// calico-node ships it) or BIRD 2. Rows are code 1002; a continuation line
// may start with a bare space instead of a code. 8xxx and 9xxx are errors.
func ParseProtocols(reply string) ([]Protocol, error) {
	var out []Protocol
	last := ""
	for _, line := range strings.Split(reply, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		code, body := "", ""
		switch {
		case len(line) >= 5 && isCode(line[:4]) && (line[4] == '-' || line[4] == ' '):
			code, body = line[:4], line[5:]
		case line[0] == ' ' && last != "":
			code, body = last, line[1:]
		default:
			return nil, fmt.Errorf("unexpected BIRD reply line %q", line)
		}
		last = code
		switch {
		case code[0] == '8' || code[0] == '9':
			return nil, errors.New("BIRD error: " + strings.TrimSpace(body))
		case code != "1002":
			continue
		}
		f := strings.Fields(body)
		if len(f) < 4 {
			continue
		}
		p := Protocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3]}
		rest := f[4:]
		var since []string
		for len(rest) > 0 && len(since) < 2 && sinceToken.MatchString(rest[0]) {
			since = append(since, rest[0])
			rest = rest[1:]
		}
		p.Since = strings.Join(since, " ")
		p.Info = strings.Join(rest, " ")
		out = append(out, p)
	}
	return out, nil
}
