package kubespray

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// maxNameLen bounds a host entry: a DNS name is at most 253 characters, and
// a bound keeps range expansion (a copy of the name per host) cheap.
const maxNameLen = 1024

var bracketPortRE = regexp.MustCompile(`^\[([^\]]+)\]:(\d+)$`)

// hostPattern splits an inventory host entry into host names and an optional
// SSH port, as Ansible does: `node1:2222`, `[fd00::1]:22`, and ranges such as
// `node[1:3]` (node1 node2 node3), `node[01:10:2]` and `rack-[a:c]`.
func hostPattern(pattern string) (names []string, port int, err error) {
	if len(pattern) > maxNameLen {
		return nil, 0, fmt.Errorf("host %s is longer than %d characters", quote(pattern), maxNameLen)
	}
	host, portText := pattern, ""
	switch m := bracketPortRE.FindStringSubmatch(pattern); {
	case m != nil:
		host, portText = m[1], m[2]
	case isIP(pattern):
	default:
		// One colon outside ranges may start a port; more make an IPv6
		// address, which takes a port only in the [addr]:port form.
		if i, n := colonsOutsideBrackets(pattern); n == 1 && digits(pattern[i+1:]) {
			host, portText = pattern[:i], pattern[i+1:]
		}
	}
	if strings.HasSuffix(host, ":") && portText == "" {
		return nil, 0, fmt.Errorf("host %s ends in ':', which Ansible reserves for a port", quote(pattern))
	}
	if host == "" {
		return nil, 0, fmt.Errorf("empty host name")
	}
	if portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil || p < 1 || p > 65535 {
			return nil, 0, fmt.Errorf("host %s: port %s is not 1-65535", quote(pattern), quote(portText))
		}
		port = p
	}
	if !strings.Contains(host, "[") {
		return []string{host}, port, nil
	}
	names, err = expandRange(host, nil)
	return names, port, err
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// colonsOutsideBrackets counts the colons that could start a port, and gives
// the last one's index: the colons of a range [1:3] do not count.
func colonsOutsideBrackets(s string) (last, n int) {
	depth, last := 0, -1
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				last, n = i, n+1
			}
		}
	}
	return last, n
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandRange expands the first [begin:end(:step)] of pattern and recurses on
// the rest, following Ansible's expand_hostname_range: numbers keep the zero
// padding of begin, letters run through a-zA-Z. It stops at maxHosts names.
func expandRange(pattern string, out []string) ([]string, error) {
	open := strings.IndexByte(pattern, '[')
	if open < 0 {
		if len(out) >= maxHosts {
			return nil, fmt.Errorf("host ranges expand to more than %d hosts", maxHosts)
		}
		return append(out, pattern), nil
	}
	closeAt := strings.IndexByte(pattern[open:], ']')
	if closeAt < 0 {
		return nil, fmt.Errorf("host %s has [ without ]", quote(pattern))
	}
	head, spec, tail := pattern[:open], pattern[open+1:open+closeAt], pattern[open+closeAt+1:]
	bounds := strings.Split(spec, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, fmt.Errorf("host range [%s] must be begin:end or begin:end:step", spec)
	}
	beg, end, step := bounds[0], bounds[1], 1
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, fmt.Errorf("host range [%s] has no end", spec)
	}
	if len(bounds) == 3 {
		s, err := strconv.Atoi(bounds[2])
		if err != nil || s < 1 {
			return nil, fmt.Errorf("host range [%s]: step %s is not a positive number", spec, quote(bounds[2]))
		}
		step = s
	}
	width := 0
	if beg[0] == '0' && len(beg) > 1 {
		width = len(beg)
		if len(end) != width {
			return nil, fmt.Errorf("host range [%s]: begin and end must have the same width", spec)
		}
	}
	var seq []string
	if b, e := strings.Index(letters, beg), strings.Index(letters, end); len(beg) == 1 && len(end) == 1 && b >= 0 && e >= 0 {
		if b > e {
			return nil, fmt.Errorf("host range [%s] must have begin <= end", spec)
		}
		for i := b; i <= e; i += min(step, len(letters)) { // min: no overflow
			seq = append(seq, letters[i:i+1])
		}
	} else {
		b, err1 := strconv.Atoi(beg)
		e, err2 := strconv.Atoi(end)
		if err1 != nil || err2 != nil || b < 0 {
			return nil, fmt.Errorf("host range [%s] is neither numbers nor single letters", spec)
		}
		if e >= b && (e-b)/step >= maxHosts {
			return nil, fmt.Errorf("host range [%s] expands to more than %d hosts", spec, maxHosts)
		}
		// Counted, not i += step: that could overflow past end and never stop.
		for k := 0; e >= b && k <= (e-b)/step; k++ {
			seq = append(seq, fmt.Sprintf("%0*d", width, b+k*step))
		}
	}
	var err error
	for _, s := range seq {
		if out, err = expandRange(head+s+tail, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}
