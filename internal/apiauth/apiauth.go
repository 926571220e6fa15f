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
	"encoding/json"
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
	// A nonce is remembered while its request is inside that window, so a
	// request is accepted once.
	MaxSkew = 5 * time.Minute
	// MaxNonces bounds the replay cache. Only requests with a valid
	// signature enter it: only a holder of the token can fill it.
	MaxNonces = 1 << 16

	version  = "v1"
	nonceLen = 16 // bytes
)

// Errors of Check, for the agent's answer and its metrics.
var (
	ErrMissing = errors.New("no " + Header + " credential")
	ErrStale   = fmt.Errorf("request time more than %s from the agent's clock", MaxSkew)
	ErrBadSig  = errors.New("signature does not match: wrong token, or the request was changed on the way")
	ErrBody    = errors.New("body does not match the signed hash: changed on the way")
	ErrReplay  = errors.New("request already seen (replayed)")
	ErrBusy    = errors.New("too many requests in the replay window")
)

// Credential is a parsed request credential. Everything in it is covered
// by the signature, the body through its hash, so a request is checked
// before its body is read.
type Credential struct {
	To    string // the agent it is made for (its --name)
	Time  int64  // Unix seconds
	Nonce string // hex
	Body  [sha256.Size]byte
	sig   []byte
}

// Sign returns the credential for a request to the agent named to, made at
// now, and its nonce (which the answer's signature is bound to). The name
// binds it to one agent: the run's agents share the token, and a request
// seen on its way to one must not be good at another.
func Sign(token, to, method, path string, body []byte, now time.Time) (header, nonce string) {
	var n [nonceLen]byte
	_, _ = rand.Read(n[:]) // never fails (crypto/rand)
	c := Credential{To: to, Time: now.Unix(), Nonce: hex.EncodeToString(n[:]), Body: sha256.Sum256(body)}
	mac := requestMAC(token, method, path, c)
	return fmt.Sprintf("%s to=%s ts=%d nonce=%s body=%x sig=%s", version, c.To, c.Time, c.Nonce, c.Body,
		base64.RawURLEncoding.EncodeToString(mac)), c.Nonce
}

func requestMAC(token, method, path string, c Credential) []byte {
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "podpath-request-%s\n%s\n%s\n%s\n%x\n%d\n%s", version, c.To, method, path, c.Body, c.Time, c.Nonce)
	return m.Sum(nil)
}

func answerMAC(token, agent, nonce string, status int, body []byte) []byte {
	h := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "podpath-answer-%s\n%s\n%s\n%d\n%x", version, agent, nonce, status, h)
	return m.Sum(nil)
}

// Parse reads a credential header; it checks the form, not the signature.
func Parse(v string) (Credential, error) {
	var c Credential
	if v == "" {
		return c, ErrMissing
	}
	f := strings.Fields(v)
	if len(f) != 6 || f[0] != version {
		return c, fmt.Errorf("malformed %s credential: want %q", Header, version+" to=… ts=… nonce=… body=… sig=…")
	}
	var val [5]string
	for i, key := range []string{"to=", "ts=", "nonce=", "body="} {
		var ok bool
		if val[i], ok = strings.CutPrefix(f[i+1], key); !ok {
			return c, fmt.Errorf("malformed %s credential: field %d is not %s…", Header, i+2, key)
		}
	}
	sig, ok := strings.CutPrefix(f[5], "sig=")
	var err error
	c.To = val[0]
	if c.Time, err = strconv.ParseInt(val[1], 10, 64); err != nil || !ok || c.To == "" {
		return c, fmt.Errorf("malformed %s credential", Header)
	}
	if b, err := hex.DecodeString(val[2]); err != nil || len(b) != nonceLen {
		return c, fmt.Errorf("malformed %s nonce: want %d hex bytes", Header, nonceLen)
	}
	c.Nonce = val[2]
	if b, err := hex.DecodeString(val[3]); err != nil || len(b) != sha256.Size {
		return c, fmt.Errorf("malformed %s body hash: want %d hex bytes", Header, sha256.Size)
	}
	_, _ = hex.Decode(c.Body[:], []byte(val[3]))
	if c.sig, err = base64.RawURLEncoding.DecodeString(sig); err != nil || len(c.sig) != sha256.Size {
		return c, fmt.Errorf("malformed %s signature", Header)
	}
	return c, nil
}

// fresh reports whether c was made within MaxSkew of now.
func (c Credential) fresh(now time.Time) bool {
	d := now.Sub(time.Unix(c.Time, 0))
	return d <= MaxSkew && d >= -MaxSkew
}

// BodyMatches reports whether body is the one the credential was made for.
func (c Credential) BodyMatches(body []byte) bool {
	h := sha256.Sum256(body)
	return hmac.Equal(h[:], c.Body[:])
}

// Verifier checks requests made with one token for one agent and
// remembers their nonces.
type Verifier struct {
	token, name string
	Now         func() time.Time // nil: time.Now

	mu   sync.Mutex
	seen map[string]int64 // nonce → request time
}

// NewVerifier checks requests made for the agent name with token.
func NewVerifier(token, name string) *Verifier {
	return &Verifier{token: token, name: name, seen: map[string]int64{}}
}

// Time is the verifier's clock.
func (v *Verifier) Time() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Check verifies a request's credential, before its body is read: made
// for this agent, fresh, signed with the token over this method and path,
// never seen before. The caller then checks the body (BodyMatches).
func (v *Verifier) Check(c Credential, method, path string) error {
	now := v.Time()
	if c.To != v.name {
		return fmt.Errorf("credential made for agent %q, this is %q", c.To, v.name)
	}
	if !c.fresh(now) {
		return ErrStale
	}
	if !hmac.Equal(c.sig, requestMAC(v.token, method, path, c)) {
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

// SignAnswer signs agent's answer to the request whose nonce is given.
func SignAnswer(token, agent, nonce string, status int, body []byte) string {
	return base64.RawURLEncoding.EncodeToString(answerMAC(token, agent, nonce, status, body))
}

// VerifyAnswer checks an answer's signature.
func VerifyAnswer(token, agent, nonce string, status int, body []byte, sig string) error {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, answerMAC(token, agent, nonce, status, body)) {
		return fmt.Errorf("answer not signed by agent %s with the run's token: another agent or not one, or changed on the way", agent)
	}
	return nil
}

// MaxLearntSkew bounds a clock difference a caller adopts from an agent's
// signed refusal: more is a broken clock to fix, not to work around.
const MaxLearntSkew = 24 * time.Hour

// SinkResultMAC signs what an agent's sink measured (the upload's byte
// count and time) for the upload whose request had nonce: an on-path
// attacker cannot make a transfer look faster, slower or whole.
func SinkResultMAC(token, agent, nonce string, result []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "podpath-sink-%s\n%s\n%s\n%x", version, agent, nonce, result)
	return m.Sum(nil)
}

// LearnSkew reads a refusal: when it is the agent's signed "stale" answer
// to the request with nonce (made at sent), it returns how far the
// agent's clock is from sent, to sign again in the agent's time. An
// unsigned or forged refusal teaches nothing, so nobody in between can
// make a caller sign requests for a time of their choosing.
func LearnSkew(token, agent, nonce string, status int, body []byte, sig string, sent time.Time) (time.Duration, bool) {
	if status != 401 || VerifyAnswer(token, agent, nonce, status, body, sig) != nil {
		return 0, false
	}
	var s StaleAnswer
	if json.Unmarshal(body, &s) != nil || s.AgentTime == 0 {
		return 0, false
	}
	d := time.Unix(s.AgentTime, 0).Sub(sent)
	if d < MaxSkew/2 && d > -MaxSkew/2 || d > MaxLearntSkew || d < -MaxLearntSkew {
		return 0, false
	}
	return d, true
}

// StaleAnswer is an agent's signed refusal of a request made too far from
// its clock: the clock, so the caller can sign again in it.
type StaleAnswer struct {
	Error     string `json:"error"`
	AgentTime int64  `json:"agentTime"` // Unix seconds
}
