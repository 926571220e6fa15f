package apiauth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const tok = "run-token"

func TestSignedRequestIsAcceptedOnce(t *testing.T) {
	v := NewVerifier(tok)
	h, _ := Sign(tok, "PUT", "/v1/peers", []byte(`{"peers":[]}`), time.Now())
	if strings.Contains(h, tok) {
		t.Fatalf("credential %q carries the token", h)
	}
	c, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(c, "PUT", "/v1/peers", []byte(`{"peers":[]}`)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := v.Check(c, "PUT", "/v1/peers", []byte(`{"peers":[]}`)); !errors.Is(err, ErrReplay) {
		t.Errorf("second use: %v; want %v", err, ErrReplay)
	}
}

func TestWhatTheSignatureCovers(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name, token, method, path, body string
		at                              time.Time
		want                            error
	}{
		{"other_token", "other", "POST", "/v1/probe", `{}`, now, ErrBadSig},
		{"other_method", tok, "DELETE", "/v1/probe", `{}`, now, ErrBadSig},
		{"other_path", tok, "POST", "/v1/listen", `{}`, now, ErrBadSig},
		{"other_body", tok, "POST", "/v1/probe", `{"targets":["x"]}`, now, ErrBadSig},
		{"made_6_minutes_ago", tok, "POST", "/v1/probe", `{}`, now.Add(-6 * time.Minute), ErrStale},
		{"made_6_minutes_ahead", tok, "POST", "/v1/probe", `{}`, now.Add(6 * time.Minute), ErrStale},
		{"made_4_minutes_ago", tok, "POST", "/v1/probe", `{}`, now.Add(-4 * time.Minute), nil},
		{"made_4_minutes_ahead", tok, "POST", "/v1/probe", `{}`, now.Add(4 * time.Minute), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := Sign(tc.token, tc.method, tc.path, []byte(tc.body), tc.at)
			c, err := Parse(h)
			if err != nil {
				t.Fatal(err)
			}
			if err := NewVerifier(tok).Check(c, "POST", "/v1/probe", []byte(`{}`)); !errors.Is(err, tc.want) {
				t.Errorf("Check: %v; want %v", err, tc.want)
			}
		})
	}
}

// The replay cache stays bounded: full of nonces still in the window it
// refuses (never forgets one that could be replayed); nonces past the
// window make room.
func TestNonceCacheIsBounded(t *testing.T) {
	now := time.Now()
	v := NewVerifier(tok)
	v.Now = func() time.Time { return now }
	for i := range MaxNonces {
		c, _ := Parse(must(Sign(tok, "GET", "/v1/facts", nil, now.Add(-4*time.Minute))))
		if err := v.Check(c, "GET", "/v1/facts", nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	c, _ := Parse(must(Sign(tok, "GET", "/v1/facts", nil, now)))
	if err := v.Check(c, "GET", "/v1/facts", nil); !errors.Is(err, ErrBusy) {
		t.Errorf("with the cache full of live nonces: %v; want %v", err, ErrBusy)
	}
	now = now.Add(2 * time.Minute) // the first MaxNonces are out of the window now
	if err := v.Check(c, "GET", "/v1/facts", nil); err != nil {
		t.Errorf("after the window moved on: %v", err)
	}
	if len(v.seen) != 1 {
		t.Errorf("%d nonces remembered; want 1", len(v.seen))
	}
}

func must(h, _ string) string { return h }

func TestAnswerSignature(t *testing.T) {
	_, nonce := Sign(tok, "GET", "/v1/facts", nil, time.Now())
	sig := SignAnswer(tok, nonce, 200, []byte(`{"a":1}`))
	if err := VerifyAnswer(tok, nonce, 200, []byte(`{"a":1}`), sig); err != nil {
		t.Fatal(err)
	}
	_, other := Sign(tok, "GET", "/v1/facts", nil, time.Now())
	for name, err := range map[string]error{
		"changed_body":   VerifyAnswer(tok, nonce, 200, []byte(`{"a":2}`), sig),
		"other_request":  VerifyAnswer(tok, other, 200, []byte(`{"a":1}`), sig),
		"other_status":   VerifyAnswer(tok, nonce, 404, []byte(`{"a":1}`), sig),
		"other_token":    VerifyAnswer("x", nonce, 200, []byte(`{"a":1}`), sig),
		"no_signature":   VerifyAnswer(tok, nonce, 200, []byte(`{"a":1}`), ""),
		"garbled_base64": VerifyAnswer(tok, nonce, 200, []byte(`{"a":1}`), "!!"),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	good, _ := Sign(tok, "GET", "/", nil, time.Now())
	f := strings.Fields(good)
	for _, h := range []string{
		"", "Bearer " + tok, "v2 " + strings.Join(f[1:], " "), strings.Join(f[:3], " "),
		f[0] + " ts=x " + f[2] + " " + f[3],
		f[0] + " " + f[1] + " nonce=abcd " + f[3],
		f[0] + " " + f[1] + " " + f[2] + " sig=AAAA",
		f[0] + " " + f[2] + " " + f[1] + " " + f[3],
	} {
		if _, err := Parse(h); err == nil {
			t.Errorf("Parse(%q) accepted", h)
		}
	}
}

// FuzzParse: any header value parses or is refused, without panic, and
// none verifies (making one that does needs the token and the time).
func FuzzParse(f *testing.F) {
	old, _ := Sign(tok, "GET", "/", nil, time.Unix(1e9, 0))
	f.Add(old)
	f.Add("v1 ts=1 nonce=00 sig=")
	f.Add("v1 ts=-9223372036854775808 nonce=00000000000000000000000000000000 sig=AAAA")
	f.Fuzz(func(t *testing.T, h string) {
		c, err := Parse(h)
		if err != nil {
			return
		}
		if NewVerifier(tok).Check(c, "GET", "/", nil) == nil {
			t.Errorf("%q verified", h)
		}
	})
}
