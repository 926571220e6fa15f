// Package bird talks to BIRD over its control socket, as calicoctl node
// status does: `show protocols` and `show status`, bounded and parsed.
package bird

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"podpath/internal/model"
)

// Timeout bounds a control-socket exchange, as calicoctl node status
// bounds its read (2 s).
const Timeout = 2 * time.Second

// Protocol is one line of BIRD's `show protocols` (model.BIRDProtocol).
type Protocol = model.BIRDProtocol

// ShowProtocols asks the BIRD behind socket for `show protocols`.
func ShowProtocols(ctx context.Context, socket string) ([]Protocol, error) {
	protos, _, err := ShowBIRD(ctx, socket)
	return protos, err
}

// Status is what `show status` says of BIRD's clock, in its own format
// and time zone (as the protocols' since column): now, and when the
// daemon started. "" when BIRD does not say.
type Status struct {
	ServerTime, LastReboot string
}

// ShowBIRD asks the BIRD behind socket for `show protocols`, then `show
// status` for its clock.
func ShowBIRD(ctx context.Context, socket string) ([]Protocol, Status, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, Status{}, fmt.Errorf("connect to BIRD at %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	if _, err := readReply(r); err != nil { // the 0001 welcome
		return nil, Status{}, fmt.Errorf("read BIRD greeting from %s: %w", socket, err)
	}
	if _, err := conn.Write([]byte("show protocols\n")); err != nil {
		return nil, Status{}, fmt.Errorf("send to BIRD at %s: %w", socket, err)
	}
	reply, err := readReply(r)
	if err != nil {
		return nil, Status{}, fmt.Errorf("read BIRD reply from %s: %w", socket, err)
	}
	protos, err := ParseProtocols(reply)
	if err != nil {
		return nil, Status{}, err
	}
	var st Status
	if _, err := conn.Write([]byte("show status\n")); err == nil {
		if reply, err := readReply(r); err == nil {
			st = ParseStatus(reply)
		}
	}
	return protos, st, nil
}

// ParseStatus reads the clock lines of a `show status` reply ("Current
// server time is 2026-12-03 14:45:24.528", "Last reboot on …").
func ParseStatus(reply string) Status {
	var st Status
	for _, line := range strings.Split(reply, "\n") {
		if _, t, ok := strings.Cut(line, "Current server time is "); ok {
			st.ServerTime = strings.TrimSpace(t)
		}
		if _, t, ok := strings.Cut(line, "Last reboot on "); ok {
			st.LastReboot = strings.TrimSpace(t)
		}
	}
	return st
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
