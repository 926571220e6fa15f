package apiauth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const tok = "run-token"

func check(v *Verifier, h, method, path string, body []byte) error {
	c, err := Parse(h)
	if err != nil {
		return err
	}
	if err := v.Check(c, method, path); err != nil {
		return err
	}
	if !c.BodyMatches(body) {
		return ErrBody
	}
	return nil
}

func TestSignedRequestIsAcceptedOnce(t *testing.T) {
	v := NewVerifier(tok, "node1")
	h, _ := Sign(tok, "node1", "PUT", "/v1/peers", []byte(`{"peers":[]}`), time.Now())
	if strings.Contains(h, tok) {
		t.Fatalf("credential %q carries the token", h)
	}
	if err := check(v, h, "PUT", "/v1/peers", []byte(`{"peers":[]}`)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := check(v, h, "PUT", "/v1/peers", []byte(`{"peers":[]}`)); !errors.Is(err, ErrReplay) {
		t.Errorf("second use: %v; want %v", err, ErrReplay)
	}
}

func TestWhatTheSignatureCovers(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name, token, to, method, path, body string
		at                                  time.Time
		want                                string
	}{
		{"other_token", "other", "node1", "POST", "/v1/probe", `{}`, now, "signature"},
		{"other_agent", tok, "node2", "POST", "/v1/probe", `{}`, now, `made for agent "node2"`},
		{"other_method", tok, "node1", "DELETE", "/v1/probe", `{}`, now, "signature"},
		{"other_path", tok, "node1", "POST", "/v1/listen", `{}`, now, "signature"},
		{"other_body", tok, "node1", "POST", "/v1/probe", `{"targets":["x"]}`, now, "body"},
		{"made_6_minutes_ago", tok, "node1", "POST", "/v1/probe", `{}`, now.Add(-6 * time.Minute), "clock"},
		{"made_6_minutes_ahead", tok, "node1", "POST", "/v1/probe", `{}`, now.Add(6 * time.Minute), "clock"},
		{"made_4_minutes_ago", tok, "node1", "POST", "/v1/probe", `{}`, now.Add(-4 * time.Minute), ""},
		{"made_4_minutes_ahead", tok, "node1", "POST", "/v1/probe", `{}`, now.Add(4 * time.Minute), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := Sign(tc.token, tc.to, tc.method, tc.path, []byte(tc.body), tc.at)
			err := check(NewVerifier(tok, "node1"), h, "POST", "/v1/probe", []byte(`{}`))
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Check: %v; want %q", err, tc.want)
			}
		})
	}
}

// A forged credential is refused before the body is read: the header
// alone decides (the agent then reads no body for it).
func TestCheckNeedsNoBody(t *testing.T) {
	h, _ := Sign("not-the-token", "node1", "PUT", "/v1/peers", []byte(strings.Repeat("x", 1<<18)), time.Now())
	c, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier(tok, "node1").Check(c, "PUT", "/v1/peers"); !errors.Is(err, ErrBadSig) {
		t.Errorf("forged credential: %v; want %v", err, ErrBadSig)
	}
}

// The replay cache stays bounded: full of nonces still in the window it
// refuses (never forgets one that could be replayed); nonces past the
// window make room.
func TestNonceCacheIsBounded(t *testing.T) {
	now := time.Now()
	v := NewVerifier(tok, "n")
	v.Now = func() time.Time { return now }
	for i := range MaxNonces {
		h, _ := Sign(tok, "n", "GET", "/v1/facts", nil, now.Add(-4*time.Minute))
		if err := check(v, h, "GET", "/v1/facts", nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	h, _ := Sign(tok, "n", "GET", "/v1/facts", nil, now)
	c, _ := Parse(h)
	if err := v.Check(c, "GET", "/v1/facts"); !errors.Is(err, ErrBusy) {
		t.Errorf("with the cache full of live nonces: %v; want %v", err, ErrBusy)
	}
	now = now.Add(2 * time.Minute) // the first MaxNonces are out of the window now
	if err := v.Check(c, "GET", "/v1/facts"); err != nil {
		t.Errorf("after the window moved on: %v", err)
	}
	if len(v.seen) != 1 {
		t.Errorf("%d nonces remembered; want 1", len(v.seen))
	}
}

func TestAnswerSignature(t *testing.T) {
	_, nonce := Sign(tok, "a", "GET", "/v1/facts", nil, time.Now())
	sig := SignAnswer(tok, "a", nonce, 200, []byte(`{"a":1}`))
	if err := VerifyAnswer(tok, "a", nonce, 200, []byte(`{"a":1}`), sig); err != nil {
		t.Fatal(err)
	}
	_, other := Sign(tok, "a", "GET", "/v1/facts", nil, time.Now())
	for name, err := range map[string]error{
		"changed_body":   VerifyAnswer(tok, "a", nonce, 200, []byte(`{"a":2}`), sig),
		"other_request":  VerifyAnswer(tok, "a", other, 200, []byte(`{"a":1}`), sig),
		"other_agent":    VerifyAnswer(tok, "b", nonce, 200, []byte(`{"a":1}`), sig),
		"other_status":   VerifyAnswer(tok, "a", nonce, 404, []byte(`{"a":1}`), sig),
		"other_token":    VerifyAnswer("x", "a", nonce, 200, []byte(`{"a":1}`), sig),
		"no_signature":   VerifyAnswer(tok, "a", nonce, 200, []byte(`{"a":1}`), ""),
		"garbled_base64": VerifyAnswer(tok, "a", nonce, 200, []byte(`{"a":1}`), "!!"),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A caller learns an agent's clock only from that agent's signed refusal
// of its own request, and only within MaxLearntSkew.
func TestLearnSkew(t *testing.T) {
	sent := time.Now()
	_, nonce := Sign(tok, "a", "GET", "/v1/facts", nil, sent)
	stale := func(ahead time.Duration) []byte {
		b, _ := json.Marshal(StaleAnswer{Error: "stale", AgentTime: sent.Add(ahead).Unix()})
		return b
	}
	hour := stale(time.Hour)
	if d, ok := LearnSkew(tok, "a", nonce, 401, hour, SignAnswer(tok, "a", nonce, 401, hour), sent); !ok || d.Round(time.Minute) != time.Hour {
		t.Errorf("signed refusal an hour ahead: %s, %v", d, ok)
	}
	for name, ok := range map[string]bool{
		"unsigned":          second(LearnSkew(tok, "a", nonce, 401, hour, "", sent)),
		"signed_by_another": second(LearnSkew(tok, "a", nonce, 401, hour, SignAnswer(tok, "b", nonce, 401, hour), sent)),
		"other_request":     second(LearnSkew(tok, "a", "00", 401, hour, SignAnswer(tok, "a", nonce, 401, hour), sent)),
		"a_year_off":        second(LearnSkew(tok, "a", nonce, 401, stale(8760*time.Hour), SignAnswer(tok, "a", nonce, 401, stale(8760*time.Hour)), sent)),
		"a_minute_off":      second(LearnSkew(tok, "a", nonce, 401, stale(time.Minute), SignAnswer(tok, "a", nonce, 401, stale(time.Minute)), sent)),
	} {
		if ok {
			t.Errorf("%s: a clock was learnt", name)
		}
	}
}

func second(_ time.Duration, ok bool) bool { return ok }

func TestParseRefusesMalformed(t *testing.T) {
	good, _ := Sign(tok, "a", "GET", "/", nil, time.Now())
	f := strings.Fields(good)
	swap := func(i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Join(g, " ")
	}
	for _, h := range []string{
		"", "Bearer " + tok, swap(0, "v2"), strings.Join(f[:5], " "), swap(1, "to="), swap(2, "ts=x"),
		swap(3, "nonce=abcd"), swap(4, "body=00"), swap(5, "sig=AAAA"), swap(1, f[2]),
	} {
		if _, err := Parse(h); err == nil {
			t.Errorf("Parse(%q) accepted", h)
		}
	}
	if _, err := Parse(good); err != nil {
		t.Errorf("Parse(%q): %v", good, err)
	}
}

// FuzzParse: any header value parses or is refused, without panic, and
// none verifies (making one that does needs the token and the time).
func FuzzParse(f *testing.F) {
	old, _ := Sign(tok, "a", "GET", "/", nil, time.Unix(1e9, 0))
	f.Add(old)
	f.Add("v1 to=a ts=1 nonce=00 body=00 sig=")
	f.Fuzz(func(t *testing.T, h string) {
		c, err := Parse(h)
		if err != nil {
			return
		}
		if NewVerifier(tok, "a").Check(c, "GET", "/") == nil {
			t.Errorf("%q verified", h)
		}
	})
}
