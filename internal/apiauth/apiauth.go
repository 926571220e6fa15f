// Package apiauth signs the agent API's requests and answers with the
// run's shared token. The token itself never crosses the network: a
// request carries an HMAC of what it asks (method, path, body), when it was
// made and a nonce, so whoever sees one on the wire can neither act with
// the token nor replay the request; an answer carries an HMAC bound to its
// request's nonce, so nobody in between can change what an agent measured.
package apiauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// Header carries a request's credential. It is not Authorization: the
	// API server's Pod proxy takes that one for the caller's own
	// credentials and never forwards it.
	Header = "X-Podpath-Auth"
	// AnswerHeader carries an answer's signature.
	AnswerHeader = "X-Podpath-Answer"
	// MaxSkew is how far a request's time may be from the agent's clock.
	// Nonces are remembered for twice as long, so a request is accepted
	// once.
	MaxSkew = 5 * time.Minute
	// MaxNonces bounds the replay cache. Only requests with a valid
	// signature enter it, and the agent's own rate limit (20/s over the
	// 10-minute window) keeps it far below this.
	MaxNonces = 1 << 16

	version  = "v1"
	nonceLen = 16 // bytes
)

// Errors of Check, for the agent's answer and its metrics.
var (
	ErrMissing = errors.New("no " + Header + " credential")
	ErrStale   = fmt.Errorf("request time more than %s from the agent's clock", MaxSkew)
	ErrBadSig  = errors.New("signature does not match: wrong token, or the request was changed on the way")
	ErrReplay  = errors.New("request already seen (replayed)")
	ErrBusy    = errors.New("too many requests in the replay window")
)

// Credential is a parsed request credential.
type Credential struct {
	Time  int64  // Unix seconds
	Nonce string // hex
	sig   []byte
}

// Sign returns the credential for a request made at now, and its nonce
// (which the answer's signature is bound to).
func Sign(token, method, path string, body []byte, now time.Time) (header, nonce string) {
	var n [nonceLen]byte
	_, _ = rand.Read(n[:]) // never fails (crypto/rand)
	nonce = hex.EncodeToString(n[:])
	ts := now.Unix()
	mac := requestMAC(token, method, path, body, ts, nonce)
	return fmt.Sprintf("%s ts=%d nonce=%s sig=%s", version, ts, nonce, base64.RawURLEncoding.EncodeToString(mac)), nonce
}

func requestMAC(token, method, path string, body []byte, ts int64, nonce string) []byte {
	h := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "podpath-request-%s\n%s\n%s\n%x\n%d\n%s", version, method, path, h, ts, nonce)
	return m.Sum(nil)
}

func answerMAC(token, nonce string, status int, body []byte) []byte {
	h := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "podpath-answer-%s\n%s\n%d\n%x", version, nonce, status, h)
	return m.Sum(nil)
}

// Parse reads a credential header; it checks the form, not the signature.
func Parse(v string) (Credential, error) {
	var c Credential
	if v == "" {
		return c, ErrMissing
	}
	f := strings.Fields(v)
	if len(f) != 4 || f[0] != version {
		return c, fmt.Errorf("malformed %s credential: want %q", Header, version+" ts=… nonce=… sig=…")
	}
	ts, ok1 := strings.CutPrefix(f[1], "ts=")
	nonce, ok2 := strings.CutPrefix(f[2], "nonce=")
	sig, ok3 := strings.CutPrefix(f[3], "sig=")
	var err error
	if c.Time, err = strconv.ParseInt(ts, 10, 64); err != nil || !ok1 || !ok2 || !ok3 {
		return c, fmt.Errorf("malformed %s credential", Header)
	}
	if b, err := hex.DecodeString(nonce); err != nil || len(b) != nonceLen {
		return c, fmt.Errorf("malformed %s nonce: want %d hex bytes", Header, nonceLen)
	}
	c.Nonce = nonce
	if c.sig, err = base64.RawURLEncoding.DecodeString(sig); err != nil || len(c.sig) != sha256.Size {
		return c, fmt.Errorf("malformed %s signature", Header)
	}
	return c, nil
}

// Fresh reports whether c was made within MaxSkew of now: checked before
// the body is read, so a stale or forged-looking request costs nothing.
func (c Credential) Fresh(now time.Time) bool {
	d := now.Sub(time.Unix(c.Time, 0))
	return d <= MaxSkew && d >= -MaxSkew
}

// Verifier checks requests made with one token and remembers their nonces.
type Verifier struct {
	token string
	Now   func() time.Time // nil: time.Now

	mu   sync.Mutex
	seen map[string]int64 // nonce → request time
}

// NewVerifier checks requests against token.
func NewVerifier(token string) *Verifier {
	return &Verifier{token: token, seen: map[string]int64{}}
}

// Time is the verifier's clock.
func (v *Verifier) Time() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Check verifies a request: a well-formed credential, fresh, signed with
// the token over this method, path and body, and never seen before.
func (v *Verifier) Check(c Credential, method, path string, body []byte) error {
	now := v.Time()
	if !c.Fresh(now) {
		return ErrStale
	}
	if !hmac.Equal(c.sig, requestMAC(v.token, method, path, body, c.Time, c.Nonce)) {
		return ErrBadSig
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.seen[c.Nonce]; dup {
		return ErrReplay
	}
	if len(v.seen) >= MaxNonces {
		// Forget what can no longer be replayed: outside the window.
		oldest := now.Add(-MaxSkew).Unix()
		for n, ts := range v.seen {
			if ts < oldest {
				delete(v.seen, n)
			}
		}
		if len(v.seen) >= MaxNonces {
			return ErrBusy
		}
	}
	v.seen[c.Nonce] = c.Time
	return nil
}

// SignAnswer signs an answer to the request whose nonce is given.
func SignAnswer(token, nonce string, status int, body []byte) string {
	return base64.RawURLEncoding.EncodeToString(answerMAC(token, nonce, status, body))
}

// VerifyAnswer checks an answer's signature.
func VerifyAnswer(token, nonce string, status int, body []byte, sig string) error {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, answerMAC(token, nonce, status, body)) {
		return errors.New("answer not signed with the run's token: not the run's agent, or changed on the way")
	}
	return nil
}
