package probe

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, 100)
	h := Header{Flags: FlagAckOnly, Run: 0xdeadbeef, Seq: 42, SentUnix: 1_700_000_000_123_456_789}
	h.Put(b)
	got, err := Decode(b)
	if err != nil || got != h {
		t.Fatalf("Decode(Put(%+v)) = %+v, %v", h, got, err)
	}
}

func TestReplyIsNeverLarger(t *testing.T) {
	req := make([]byte, 1400)
	Header{Seq: 7}.Put(req)
	out, err := Reply(req, nil)
	if err != nil || len(out) != len(req) {
		t.Fatalf("echo reply: %d bytes, %v; want %d", len(out), err, len(req))
	}
	if h, _ := Decode(out); h.Flags&FlagReply == 0 || h.Seq != 7 {
		t.Errorf("reply header %+v: want FlagReply and seq 7", h)
	}
	Header{Flags: FlagAckOnly, Seq: 8}.Put(req)
	out, err = Reply(req, nil)
	if err != nil || len(out) != HeaderLen {
		t.Fatalf("ack-only reply: %d bytes, %v; want %d", len(out), err, HeaderLen)
	}
}

func TestReplyRefuses(t *testing.T) {
	reply := make([]byte, 64)
	Header{Flags: FlagReply}.Put(reply)
	bad := map[string][]byte{
		"short":        []byte("PPv1"),
		"wrong_magic":  bytes.Repeat([]byte{'x'}, 64),
		"unknown_flag": append(append([]byte{}, magic[:]...), append([]byte{0x80}, make([]byte, 59)...)...),
		"a_reply":      reply,
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := Reply(b, nil); !errors.Is(err, ErrNotProbe) {
				t.Errorf("Reply(%q) error = %v; want ErrNotProbe", name, err)
			}
		})
	}
}

func TestPayloadLen(t *testing.T) {
	if got := PayloadLen(1500, false); got != 1472 {
		t.Errorf("PayloadLen(1500, v4) = %d; want 1472 (what ping -s 1472 sends)", got)
	}
	if got := PayloadLen(1500, true); got != 1452 {
		t.Errorf("PayloadLen(1500, v6) = %d; want 1452", got)
	}
}

// FuzzDecode: the responder decodes whatever arrives on its port; it must
// never panic, and must never answer with more bytes than it got.
func FuzzDecode(f *testing.F) {
	ok := make([]byte, 64)
	Header{Flags: FlagAckOnly, Seq: 1}.Put(ok)
	f.Add(ok)
	f.Add([]byte("PPv1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Decode(b)
		if err == nil {
			out := make([]byte, HeaderLen)
			h.Put(out)
			if again, err := Decode(out); err != nil || again != h {
				t.Fatalf("re-encode of %+v: %+v, %v", h, again, err)
			}
		}
		if out, err := Reply(b, nil); err == nil && len(out) > len(b) {
			t.Fatalf("reply of %d bytes to a %d-byte request", len(out), len(b))
		}
	})
}
