package lab

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The kernel may lack sch_netem (this project's CI kernel does), so the
// delay fault puts a userspace wire between a node's fabric port and its
// bridge: two AF_PACKET sockets that pass every frame on, one direction held
// back by the delay. PACKET_VNET_HDR carries checksum-offload state across,
// so frames leave exactly as they arrived.
const (
	wireQueue       = 8192 // frames in flight per direction; more are dropped, as a full qdisc would
	wireStopTimeout = 2 * time.Second
	vnetHdrLen      = 10 // struct virtio_net_hdr
	wireFrameMax    = 65536 + vnetHdrLen
)

func wireLinks(n *Node) (toBridge, wirePort string) {
	i := n.FabricPort[1:]
	return "d" + i + "b", "d" + i + "a"
}

func wireFiles(dir, node string) (pid, log, marker string) {
	d := filepath.Join(dir, node)
	return filepath.Join(d, "wire.pid"), filepath.Join(d, "wire.log"), "podpath-wire:" + d
}

// startWire detaches n's fabric port from its bridge and splices it back in
// through a delaying wire process.
func startWire(s *Spec, f *nsHandle, n *Node, delay time.Duration) error {
	toBridge, wirePort := wireLinks(n)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: wirePort, MTU: MaxMTU}, PeerName: toBridge, PeerMTU: MaxMTU, PeerTxQLen: -1}
	if err := f.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create wire veth %s: %w", wirePort, err)
	}
	if err := linkUp(f, wirePort); err != nil {
		return err
	}
	if err := attachPort(f, toBridge, s.Subnets[n.Subnet].Bridge); err != nil {
		return err
	}
	port, err := f.link(n.FabricPort)
	if err != nil {
		return err
	}
	if err := f.nl.LinkSetNoMaster(port); err != nil {
		return fmt.Errorf("detach %s from bridge: %w", n.FabricPort, err)
	}
	dir := Dir(s.Name)
	pidf, logf, marker := wireFiles(dir, n.Name)
	if err := os.MkdirAll(filepath.Dir(pidf), 0o755); err != nil {
		return fmt.Errorf("create wire directory: %w", err)
	}
	exe, err := binary()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open wire log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(exe, "lab", "wire", "--netns", s.Fabric, "--from", n.FabricPort, "--to", wirePort,
		"--delay-ms", strconv.Itoa(int(delay/time.Millisecond)), "--ready", pidf+".ready", "--id", marker)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start wire: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it if it dies while we run
	if err := os.WriteFile(pidf, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write wire pid: %w", err)
	}
	// The wire reports readiness by creating its ready file once both
	// sockets are bound. Its exit is watched through Wait, not /proc: between
	// fork and exec its command line is still ours.
	ready := pidf + ".ready"
	deadline := time.After(wireStopTimeout)
wait:
	for {
		if _, err := os.Stat(ready); err == nil {
			return nil
		}
		select {
		case <-exited:
			break wait
		case <-deadline:
			break wait
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("wire for %s did not start (see %s)", n.Name, logf)
}

// stopWire ends n's wire process, if any.
func stopWire(dir, node string) {
	pidf, _, marker := wireFiles(dir, node)
	stopPid(readPid(pidf), marker, wireStopTimeout)
	_ = os.Remove(pidf)
	_ = os.Remove(pidf + ".ready")
}

// unwire stops the wire and puts n's fabric port back on its bridge.
func unwire(s *Spec, f *nsHandle, n *Node) error {
	stopWire(Dir(s.Name), n.Name)
	_, wirePort := wireLinks(n)
	if l, err := f.nl.LinkByName(wirePort); err == nil {
		if err := f.nl.LinkDel(l); err != nil {
			return fmt.Errorf("delete wire veth %s: %w", wirePort, err)
		}
	}
	return attachPort(f, n.FabricPort, s.Subnets[n.Subnet].Bridge)
}

// WireMain is the body of the wire process, started as "<self> lab wire
// FLAGS" by the delay fault. It is shared by the podpath binary's hidden
// `lab wire` command and test binaries' TestMain.
func WireMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wire", flag.ContinueOnError)
	netnsName := fs.String("netns", "", "namespace of both links")
	from := fs.String("from", "", "link whose arriving frames are delayed")
	to := fs.String("to", "", "link on the other side")
	delayMs := fs.Int("delay-ms", 0, "delay in milliseconds")
	ready := fs.String("ready", "", "file to create once the wire carries frames")
	fs.String("id", "", "marks the process's command line, so down finds it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return RunWire(ctx, *netnsName, *from, *to, time.Duration(*delayMs)*time.Millisecond, *ready)
}

// RunWire is the wire process: it splices links from and to inside netns,
// delaying frames that arrive on from by delay, until ctx ends. It is the
// body of the hidden `podpath lab wire` command.
func RunWire(ctx context.Context, netnsName, from, to string, delay time.Duration, readyFile string) error {
	var fromFd, toFd int
	err := inNetns(netnsName, func() error {
		var err error
		if fromFd, err = packetSocket(from); err != nil {
			return err
		}
		toFd, err = packetSocket(to)
		return err
	})
	if err != nil {
		return err
	}
	if readyFile != "" {
		if err := os.WriteFile(readyFile, nil, 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- pump(ctx, fromFd, toFd, delay) }()
	go func() { errc <- pump(ctx, toFd, fromFd, 0) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func packetSocket(ifname string) (int, error) {
	ifi, err := netlink.LinkByName(ifname)
	if err != nil {
		return -1, fmt.Errorf("find %s: %w", ifname, err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("PACKET_VNET_HDR on %s: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Attrs().Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind packet socket to %s: %w", ifname, err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Attrs().Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("promiscuous %s: %w", ifname, err)
	}
	return fd, nil
}

type frame struct {
	due  time.Time
	data []byte
}

// pump copies frames arriving on in to out, each one delay after it arrived.
func pump(ctx context.Context, in, out int, delay time.Duration) error {
	q := make(chan frame, wireQueue)
	go func() {
		for f := range q {
			if d := time.Until(f.due); d > 0 {
				time.Sleep(d)
			}
			// A frame the far side cannot take (EMSGSIZE above its MTU) is
			// lost, as on a real link.
			_ = unix.Send(out, f.data, 0)
		}
	}()
	defer close(q)
	buf := make([]byte, wireFrameMax)
	for ctx.Err() == nil {
		n, sa, err := unix.Recvfrom(in, buf, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("read frame: %w", err)
		}
		if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own writes
		}
		f := frame{due: time.Now().Add(delay), data: append([]byte(nil), buf[:n]...)}
		select {
		case q <- f:
		default: // queue full: drop
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
