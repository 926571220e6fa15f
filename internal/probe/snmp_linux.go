package probe

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UDPRcvbufErrors is the kernel's count of UDP datagrams dropped in this
// network namespace because a socket's receive queue was full (IPv4 and
// IPv6 together): the responder falling behind shows here, not in its own
// counters, since those datagrams never reach it.
func UDPRcvbufErrors() (uint64, error) {
	v4, err := snmpField("/proc/net/snmp", "Udp:", "RcvbufErrors")
	if err != nil {
		return 0, err
	}
	v6, err := snmp6Field("/proc/net/snmp6", "Udp6RcvbufErrors")
	if err != nil && !os.IsNotExist(err) { // a kernel without IPv6 has no snmp6
		return 0, err
	}
	return v4 + v6, nil
}

// snmpField reads one field of a /proc/net/snmp table: a header line and
// a value line that both start with prefix.
func snmpField(path, prefix, field string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == field && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("%s: no %s %s", path, prefix, field)
}

// snmp6Field reads one "name value" line of /proc/net/snmp6.
func snmp6Field(path, field string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == field {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}
