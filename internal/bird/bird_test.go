package bird

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podpath/internal/model"
)

func TestParseProtocols(t *testing.T) {
	tests := []struct {
		file string
		want []Protocol
	}{
		{
			file: "bird1-show-protocols.txt", // calico-node's BIRD 1.6
			want: []Protocol{
				{Name: "static1", Proto: "Static", Table: "master", State: "up", Since: "2016-11-21"},
				{Name: "kernel1", Proto: "Kernel", Table: "master", State: "up", Since: "2016-11-21"},
				{Name: "device1", Proto: "Device", Table: "master", State: "up", Since: "2016-11-21"},
				{Name: "direct1", Proto: "Direct", Table: "master", State: "up", Since: "2016-11-21"},
				{Name: "Mesh_172_17_8_102", Proto: "BGP", Table: "master", State: "up", Since: "2016-11-21", Info: "Established"},
				{Name: "Node_172_17_80_102", Proto: "BGP", Table: "master", State: "up", Since: "2016-11-21", Info: "Active Socket: error"},
				{Name: "Global_10_0_0_1", Proto: "BGP", Table: "master", State: "start", Since: "2016-11-21 09:13:22", Info: "Connect"},
			},
		},
		{
			file: "bird2-show-protocols.txt", // recorded from the lab's BIRD 2.0.12, node3's BIRD stopped
			want: []Protocol{
				{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "19:53:01.589"},
				{Name: "kernel1", Proto: "Kernel", Table: "master4", State: "up", Since: "19:53:01.589"},
				{Name: "blocks", Proto: "Static", Table: "master4", State: "up", Since: "19:53:01.589"},
				{Name: "Mesh_198_18_0_2", Proto: "BGP", Table: "---", State: "up", Since: "19:53:06.190", Info: "Established"},
				{Name: "Mesh_198_18_0_3", Proto: "BGP", Table: "---", State: "start", Since: "19:53:06.613", Info: "Active Received: Administrative shutdown"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseProtocols(string(data))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d rows %+v; want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("row %d = %+v; want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestEstablished(t *testing.T) {
	tests := []struct {
		p    Protocol
		want bool
	}{
		{Protocol{Proto: "BGP", Info: "Established"}, true},
		{Protocol{Proto: "BGP", Info: "Active Socket: error"}, false},
		{Protocol{Proto: "BGP", State: "down", Info: "Failed"}, false},
		{Protocol{Proto: "Static", Info: "Established"}, false},
	}
	for _, tt := range tests {
		if got := tt.p.Established(); got != tt.want {
			t.Errorf("%+v.Established() = %v; want %v", tt.p, got, tt.want)
		}
	}
}

func TestParseProtocolsErrors(t *testing.T) {
	for name, reply := range map[string]string{
		"parse_error":   "9001 syntax error, unexpected CF_SYM_UNDEFINED\n",
		"runtime_error": "8003 No protocols match\n",
		"garbage":       "hello\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseProtocols(reply); err == nil {
				t.Errorf("ParseProtocols(%q) succeeded; want an error", reply)
			}
		})
	}
}

// fakeBIRD listens on a control socket in a temporary directory and hands
// the first connection to serve.
func fakeBIRD(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bird.ctl")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	return sock
}

// A BIRD that accepts and never answers must not hang the caller.
func TestShowProtocolsIsBounded(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	sock := fakeBIRD(t, func(net.Conn) { <-hold })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := ShowProtocols(ctx, sock); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ShowProtocols on a silent socket succeeded")
		}
	case <-time.After(Timeout + time.Second):
		t.Fatal("ShowProtocols did not return within its timeout")
	}
}

// The exchange as BIRD runs it: greeting, command, multi-line reply.
func TestShowProtocolsConversation(t *testing.T) {
	reply, err := os.ReadFile("testdata/bird2-show-protocols.txt")
	if err != nil {
		t.Fatal(err)
	}
	greeting, rest, _ := strings.Cut(string(reply), "\n")
	sock := fakeBIRD(t, func(c net.Conn) {
		_, _ = c.Write([]byte(greeting + "\n"))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if string(buf[:n]) != "show protocols\n" {
			_, _ = c.Write([]byte("9001 unexpected command\n"))
			return
		}
		_, _ = c.Write([]byte(rest))
	})
	got, err := ShowProtocols(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || !got[3].Established() || got[4].Established() {
		t.Errorf("ShowProtocols = %+v; want 5 rows, Mesh_198_18_0_2 Established, Mesh_198_18_0_3 not", got)
	}
}

// FuzzParseProtocols: whatever a BIRD (or something pretending to be one)
// sends must not crash the parser, and every row it returns is complete.
func FuzzParseProtocols(f *testing.F) {
	for _, file := range []string{"bird1-show-protocols.txt", "bird2-show-protocols.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Add("9001 syntax error\n")
	f.Add(" \n0000 \n")
	f.Fuzz(func(t *testing.T, reply string) {
		rows, err := ParseProtocols(reply)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Name == "" || r.Proto == "" || r.Table == "" || r.State == "" {
				t.Fatalf("incomplete row %+v from %q", r, reply)
			}
		}
	})
}

// After the protocols, BIRD's clock (`show status`), against which a
// session's since says how long it has tried.
func TestShowBIRDReadsTheClock(t *testing.T) {
	reply, err := os.ReadFile("testdata/bird2-show-protocols.txt")
	if err != nil {
		t.Fatal(err)
	}
	greeting, rest, _ := strings.Cut(string(reply), "\n")
	status := "1000-BIRD 2.0.12\n1011-Router ID is 10.9.9.9\n Hostname is vm\n Current server time is 2026-12-03 14:45:24.528\n Last reboot on 2026-12-03 14:45:15.697\n0013 Daemon is up and running\n"
	sock := fakeBIRD(t, func(c net.Conn) {
		_, _ = c.Write([]byte(greeting + "\n"))
		r := bufio.NewReader(c)
		for range 2 {
			cmd, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd {
			case "show protocols\n":
				_, _ = c.Write([]byte(rest))
			case "show status\n":
				_, _ = c.Write([]byte(status))
			default:
				_, _ = c.Write([]byte("9001 unexpected command\n"))
			}
		}
	})
	protos, st, err := ShowBIRD(context.Background(), sock)
	if err != nil || len(protos) != 5 || st != (Status{"2026-12-03 14:45:24.528", "2026-12-03 14:45:15.697"}) {
		t.Fatalf("ShowBIRD = %d protocols, %+v, %v; want 5, the clock and the start", len(protos), st, err)
	}
	clock := st.ServerTime
	b := model.BIRDState{ServerTime: clock, Started: st.LastReboot}
	if up, ok := b.Uptime(); !ok || up != 8831*time.Millisecond {
		t.Errorf("uptime %s, %v; want 8.831s", up, ok)
	}
	for _, c := range []struct {
		since string
		age   time.Duration
		ok    bool
	}{
		{"14:45:15.696", 8832 * time.Millisecond, true},          // today, iso short ms (BIRD 2's default)
		{"14:40:24", 5*time.Minute + 528*time.Millisecond, true}, // iso short
		{"2026-12-03 14:45:24.528", 0, true},
		{"23:59:00.000", 14*time.Hour + 46*time.Minute + 24528*time.Millisecond, true}, // yesterday
		{"2026-12-01", 62*time.Hour + 45*time.Minute + 24528*time.Millisecond, true},
		{"2026-12-04 00:00:00", 0, false}, // after BIRD's clock
		{"", 0, false},
		{"Established", 0, false},
	} {
		age, ok := b.StateAge(Protocol{Since: c.since})
		if age != c.age || ok != c.ok {
			t.Errorf("since %q by BIRD's clock %s: %s, %v; want %s, %v", c.since, clock, age, ok, c.age, c.ok)
		}
	}
	if _, ok := (model.BIRDState{}).StateAge(Protocol{Since: "14:45:15.696"}); ok {
		t.Error("an age without BIRD's clock; want none")
	}
}
