package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
)

const (
	// chromiumTimeout bounds one headless Chromium run; a run takes about a
	// second, the rest is headroom for a loaded CI machine.
	chromiumTimeout = 30 * time.Second
	// chromiumWaitDelay is how long Wait waits for Chromium's output pipes
	// after the process group was killed.
	chromiumWaitDelay = 5 * time.Second
	// chromiumExitTimeout is how long the process group may take to die.
	chromiumExitTimeout = 5 * time.Second
)

// TestHTMLInChromium opens the seed report in a real headless Chromium: the
// DOM it builds, what the page logs to its console, and a screenshot kept as
// an artifact ($PODPATH_ARTIFACTS/report-seed.png, else artifacts/ at the
// repository root) for a person to look at.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("skipped: chromium not installed (scripts/deps.sh installs it)")
	}
	var page bytes.Buffer
	if err := HTML(&page, seedHTMLReport()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + file

	t.Run("dom", func(t *testing.T) {
		stdout, stderr := runChromium(t, bin, "--dump-dom", url)
		doc, err := html.Parse(bytes.NewReader(stdout))
		if err != nil {
			t.Fatalf("parse dumped DOM: %v", err)
		}
		if findID(doc, "findings") == nil || findID(doc, "finding-mtu-blackhole") == nil {
			t.Errorf("dumped DOM lacks the findings section or the mtu-blackhole finding:\n%.2000s", stdout)
		}
		keys, n := brokenKeys(heatCells(doc))
		if want := slices.Sorted(slices.Values(seedBroken)); !slices.Equal(keys, want) {
			t.Errorf("broken pairs in Chromium's DOM %v; want %v", keys, want)
		}
		if n != 3*len(seedBroken) {
			t.Errorf("%d broken cells in Chromium's DOM; want %d", n, 3*len(seedBroken))
		}
		if errs := consoleLines(stderr); len(errs) > 0 {
			t.Errorf("the page logged to the console:\n%s", strings.Join(errs, "\n"))
		}
	})

	// The Service checks as Chromium lays them out: a row per check, the
	// failed one marked, and each node's kube-proxy.
	t.Run("services", func(t *testing.T) {
		var page bytes.Buffer
		if err := HTML(&page, withFindings(seedReport())); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "services.html")
		if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr := runChromium(t, bin, "--dump-dom", "file://"+file)
		doc, err := html.Parse(bytes.NewReader(stdout))
		if err != nil {
			t.Fatalf("parse dumped DOM: %v", err)
		}
		sec := findID(doc, "services")
		if sec == nil {
			t.Fatalf("no services section in Chromium's DOM:\n%.2000s", stdout)
		}
		var rows []string
		walk(sec, func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "tr" {
				if from, ok := attr(n, "data-from"); ok {
					to, _ := attr(n, "data-to")
					class, _ := attr(n, "class")
					rows = append(rows, from+">"+to+":"+class)
				}
			}
		})
		if want := []string{"node1>node2:ok", "node2>node1:failed", "node1>node2:ok", "node3>node1:unknown"}; !slices.Equal(rows, want) {
			t.Errorf("Service rows %v; want %v", rows, want)
		}
		if !strings.Contains(string(stdout), "node2: nothing on its health port, rules: nftables") {
			t.Errorf("the kube-proxy list lacks node2's state")
		}
		// The cluster DNS checks: a row per server asked, the failing one
		// marked with how its questions failed.
		dns := findID(doc, "dns")
		if dns == nil {
			t.Fatalf("no dns section in Chromium's DOM")
		}
		var asked []string
		walk(dns, func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "tr" {
				if from, ok := attr(n, "data-from"); ok {
					server, _ := attr(n, "data-server")
					class, _ := attr(n, "class")
					asked = append(asked, from+">"+server+":"+class)
				}
			}
		})
		if want := []string{"node1>Service kube-system/coredns 10.233.0.3:53:ok", "node1>coredns-7d9f-x2k4q on node2:failed", "node3>coredns-7d9f-x2k4q on node2:unknown"}; !slices.Equal(asked, want) {
			t.Errorf("DNS rows %v; want %v", asked, want)
		}
		if !strings.Contains(string(stdout), "UDP large ✗ timeout") || !strings.Contains(string(stdout), "TCP large 2967 B 1.3 ms") {
			t.Errorf("the DNS rows do not say what failed and what came:\n%.3000s", stdout)
		}
		if errs := consoleLines(stderr); len(errs) > 0 {
			t.Errorf("the page logged to the console:\n%s", strings.Join(errs, "\n"))
		}
	})

	// Without this the check above would pass silently if Chromium ever
	// changed how it logs a page's console.
	t.Run("console_errors_are_seen", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.html")
		err := os.WriteFile(bad, []byte(`<!DOCTYPE html><title>x</title><script>noSuchFunction()</script>`), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, stderr := runChromium(t, bin, "--dump-dom", "file://"+bad)
		if errs := consoleLines(stderr); len(errs) != 1 || !strings.Contains(errs[0], "noSuchFunction") {
			t.Errorf("console lines %q; want the one Uncaught ReferenceError (stderr:\n%s)", errs, stderr)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		dir := artifactDir(t)
		shot := filepath.Join(dir, "report-seed.png")
		os.Remove(shot)
		_, stderr := runChromium(t, bin, "--screenshot="+shot, "--window-size=1400,1800", url)
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v (stderr:\n%s)", err, stderr)
		}
		t.Logf("screenshot: %s", shot)
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("%s is not a PNG", shot)
		}
		if len(b) < 10<<10 {
			t.Errorf("%s is %d bytes; want a real page (>10 KB)", shot, len(b))
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decode %s: %v", shot, err)
		}
		if got := img.Bounds().Dx(); got != 1400 {
			t.Errorf("screenshot %d px wide; want 1400", got)
		}
		if err := os.WriteFile(filepath.Join(dir, "report-seed.html"), page.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	})
}

// runChromium runs one headless Chromium in its own process group and makes
// sure nothing of it outlives the call: the browser forks zygote, GPU and
// renderer processes that a plain Kill of the first one would leave behind.
func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	flags := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", // containers often have a 64 MiB /dev/shm
		"--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000",
	}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = chromiumWaitDelay
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	if cmd.Process != nil {
		killGroup(t, cmd.Process.Pid)
	}
	if runErr != nil {
		t.Fatalf("chromium %s: %v (timeout %v)\nstderr:\n%s", strings.Join(args, " "), runErr, chromiumTimeout, errb.Bytes())
	}
	return out.Bytes(), errb.Bytes()
}

// killGroup kills what is left of process group pgid and waits until none
// of it runs. Zombies count as gone: they are dead, and reaping orphans is
// up to PID 1, which in some containers does it only every second or two.
func killGroup(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(chromiumExitTimeout)
	for {
		err := syscall.Kill(-pgid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		left := running(pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium processes %v of group %d still run after %v", left, pgid, chromiumExitTimeout)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running lists the processes of group pgid that are not zombies.
func running(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			out = append(out, pid)
		}
	}
	return out
}

// consoleLines picks the page's console messages and uncaught exceptions out
// of Chromium's log (--enable-logging=stderr), which also carries harmless
// browser noise (D-Bus, GPU, sandbox):
//
//	[…:INFO:CONSOLE:1] "Uncaught ReferenceError: x is not defined", source: file:///… (1)
func consoleLines(stderr []byte) []string {
	var out []string
	for _, l := range strings.Split(string(stderr), "\n") {
		if strings.Contains(l, ":CONSOLE") || strings.Contains(l, "Uncaught") {
			out = append(out, l)
		}
	}
	return out
}

// artifactDir is where the test leaves files for people:
// $PODPATH_ARTIFACTS, else artifacts/ at the repository root (git ignores it).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PODPATH_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(".")
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatal("no go.mod above the test's directory")
			}
			root = parent
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// At 1,000 nodes the heatmaps are blocks of 25 nodes: the page stays
// small, Chromium lays it out, and the black hole's blocks are the ones
// marked broken, in the row and the column of node500's block.
func TestHTMLThousandNodesInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("skipped: chromium not installed (scripts/deps.sh installs it)")
	}
	var page bytes.Buffer
	if err := HTML(&page, thousandNodeReport()); err != nil {
		t.Fatal(err)
	}
	if page.Len() > 4<<20 {
		t.Errorf("the page is %d bytes; want a few megabytes at most", page.Len())
	}
	t.Logf("1,000-node page: %d KiB", page.Len()>>10)
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := runChromium(t, bin, "--dump-dom", "file://"+file)
	doc, err := html.Parse(bytes.NewReader(stdout))
	if err != nil {
		t.Fatalf("parse dumped DOM: %v", err)
	}
	cells := heatCells(doc)
	if len(cells) != 40*40*3 {
		t.Errorf("%d cells in Chromium's DOM; want 40×40 blocks × 3 metrics", len(cells))
	}
	// What each block's cells must show, from the pairs: blocks of 25 in
	// inventory order, named by their first and last node.
	r := thousandNodeReport()
	blockOf := func(node string) string {
		var i int
		fmt.Sscanf(node, "node%d", &i)
		first := (i-1)/25*25 + 1
		return fmt.Sprintf("node%d…node%d", first, first+24)
	}
	broken, mtu := map[[2]string]bool{}, map[[2]string]int{}
	for _, ref := range r.Findings[0].Pairs {
		broken[[2]string{blockOf(ref.From), blockOf(ref.To)}] = true
	}
	for _, p := range r.Pairs.All() {
		k := [2]string{blockOf(p.From), blockOf(p.To)}
		if p.PathMTU > 0 && (mtu[k] == 0 || p.PathMTU < mtu[k]) {
			mtu[k] = p.PathMTU
		}
	}
	seen := 0
	for _, c := range cells {
		k := [2]string{c.from, c.to}
		if c.has("broken") != broken[k] {
			t.Errorf("cell %s → %s (%s): broken %v; want %v", c.from, c.to, c.metric, c.has("broken"), broken[k])
		}
		want := "✓" // every pair reachable, a full-sized packet crossed: the cheap check
		if mtu[k] > 0 {
			want = fmt.Sprint(mtu[k])
		}
		if c.metric == "mtu" && c.text != want {
			t.Errorf("cell %s → %s: path MTU %q; want %q, the block's smallest", c.from, c.to, c.text, want)
		}
		if c.metric == "mtu" && c.text == "1400" {
			seen++
		}
	}
	if seen == 0 || len(broken) == 0 {
		t.Errorf("no cell shows the black hole (%d broken blocks expected)", len(broken))
	}
	if errs := consoleLines(stderr); len(errs) > 0 {
		t.Errorf("the page logged to the console:\n%s", strings.Join(errs, "\n"))
	}
	shot := filepath.Join(artifactDir(t), "report-1000-nodes.png")
	if _, stderr := runChromium(t, bin, "--screenshot="+shot, "--window-size=1400,1800", "file://"+file); !fileIsPNG(shot) {
		t.Errorf("no screenshot of the 1,000-node page (stderr:\n%s)", stderr)
	}
}

func fileIsPNG(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n"))
}
