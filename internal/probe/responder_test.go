package probe

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Two senders flooding the responder, each well past its share, must not
// take a third sender's answers: issue 15's "two Pods took a legitimate
// pair to 100% loss". All on loopback, bounded in count and time.
func TestResponderFloodLeavesOthersTheirAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers bool // the responder knows its peers (an agent with PUT /v1/peers)
	}{{"per-source budgets", false}, {"peers apart from strangers", true}} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			legit := netip.MustParseAddr("127.0.0.4")
			r := &Responder{}
			if tc.peers {
				r.Peer = func(ip netip.Addr) bool { return ip == legit }
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			go r.Serve(ctx, pc)
			to := pc.LocalAddr().(*net.UDPAddr)

			probeMsg := make([]byte, 64)
			Header{Seq: 1}.Put(probeMsg)
			floodCtx, stopFlood := context.WithCancel(ctx)
			var wg sync.WaitGroup
			var flooded [2]int
			for i, src := range []string{"127.0.0.2", "127.0.0.3"} {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				wg.Add(1)
				go func() { // 25 a millisecond each, several times a sender's share, for at most 5 s
					defer wg.Done()
					for n := 0; n < 125000 && floodCtx.Err() == nil; n += 25 {
						for range 25 {
							_, _ = c.WriteTo(probeMsg, to)
						}
						flooded[i] += 25
						time.Sleep(time.Millisecond)
					}
				}()
			}
			time.Sleep(500 * time.Millisecond) // the floods use up any burst first

			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: legit.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const sent = 300
			got := make(chan int)
			go func() {
				n, buf := 0, make([]byte, 2048)
				for {
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(buf); err != nil {
						got <- n
						return
					}
					n++
				}
			}()
			for range sent {
				_, _ = c.WriteTo(probeMsg, to)
				time.Sleep(2 * time.Millisecond)
			}
			answered := <-got
			stopFlood()
			wg.Wait()
			t.Logf("floods of %d and %d datagrams; the third sender: %d of %d answered; answered %d, dropped %d in all",
				flooded[0], flooded[1], answered, sent, r.Answered.Load(), r.Dropped.Load())
			if answered < sent*98/100 {
				t.Errorf("%d of %d probes answered while two other senders flooded; want (nearly) all", answered, sent)
			}
			if r.Dropped.Load() == 0 {
				t.Errorf("nothing dropped: the floods were answered in full, past each sender's share")
			}
		})
	}
}
