package model

import (
	"encoding/json"
	"iter"
	"reflect"
)

// Pairs is a run's pairs, in order. A doctor run on thousands of nodes
// has millions of them, nearly all alike: reachable, and nothing else
// found (the cheap check). Held whole, at 376 bytes and more each, 5,000
// nodes' 25 million pairs would not fit a controller's memory; so a
// compact Pairs (CompactPairs) keeps those as one bit each, their names
// worked out from their index, and only the others whole. The zero value
// is empty; PairsOf holds a slice as it is.
type Pairs struct {
	list []Pair // PairsOf's pairs, or nil

	n     int
	ident func(i int) Pair // pair i's names (From, To, Layer, FromPod, ToPod, Family)
	plain []uint64         // bit i: pair i is ident(i), reachable, nothing more
	whole map[int]*Pair    // every other pair that was set
}

// PairsOf holds ps (not copied).
func PairsOf(ps []Pair) Pairs { return Pairs{list: ps} }

// CompactPairs holds n pairs whose names ident gives; each starts as
// its names alone (not measured: nothing known yet, no error either).
func CompactPairs(n int, ident func(i int) Pair) Pairs {
	return Pairs{n: n, ident: ident, plain: make([]uint64, (n+63)/64), whole: map[int]*Pair{}}
}

// Len is how many pairs there are.
func (s Pairs) Len() int {
	if s.ident == nil {
		return len(s.list)
	}
	return s.n
}

// At returns pair i (a copy: change it with Set).
func (s Pairs) At(i int) Pair {
	if s.ident == nil {
		return s.list[i]
	}
	if s.plain[i/64]&(1<<(i%64)) != 0 {
		p := s.ident(i)
		p.Reachable = true
		return p
	}
	if p, ok := s.whole[i]; ok {
		return *p
	}
	return s.ident(i)
}

// Set makes pair i p.
func (s Pairs) Set(i int, p Pair) {
	if s.ident == nil {
		s.list[i] = p
		return
	}
	if s.isPlain(i, p) {
		s.plain[i/64] |= 1 << (i % 64)
		delete(s.whole, i)
		return
	}
	s.plain[i/64] &^= 1 << (i % 64)
	whole := p // only these escape: the plain ones cost nothing
	s.whole[i] = &whole
}

// isPlain: p is pair i's names, reachable, and nothing else.
func (s Pairs) isPlain(i int, p Pair) bool {
	if !p.Reachable {
		return false
	}
	id := s.ident(i)
	if p.From != id.From || p.To != id.To || p.Layer != id.Layer || p.FromPod != id.FromPod || p.ToPod != id.ToPod || p.Family != id.Family {
		return false
	}
	p.From, p.To, p.Layer, p.FromPod, p.ToPod, p.Family, p.Reachable = "", "", "", "", "", "", false
	return reflect.ValueOf(&p).Elem().IsZero()
}

// All yields every pair with its index, in order.
func (s Pairs) All() iter.Seq2[int, Pair] {
	return func(yield func(int, Pair) bool) {
		for i := range s.Len() {
			if !yield(i, s.At(i)) {
				return
			}
		}
	}
}

// Join is a's pairs followed by b's, compact when either is: a
// dual-stack run's IPv4 pairs and then its IPv6 ones.
func Join(a, b Pairs) Pairs {
	switch {
	case b.Len() == 0:
		return a
	case a.Len() == 0:
		return b
	case a.ident == nil && b.ident == nil:
		return PairsOf(append(append(make([]Pair, 0, a.Len()+b.Len()), a.list...), b.list...))
	}
	n := a.Len()
	ident := func(i int) Pair {
		if i < n {
			return names(a.At(i))
		}
		return names(b.At(i - n))
	}
	out := CompactPairs(n+b.Len(), ident)
	for i, p := range a.All() {
		out.Set(i, p)
	}
	for i, p := range b.All() {
		out.Set(n+i, p)
	}
	return out
}

// Filter is the pairs keep keeps, in order, compact when s is: one
// family's pairs of a dual-stack run.
func (s Pairs) Filter(keep func(Pair) bool) Pairs {
	if s.ident == nil {
		var out []Pair
		for _, p := range s.list {
			if keep(p) {
				out = append(out, p)
			}
		}
		return PairsOf(out)
	}
	var idx []int32
	for i, p := range s.All() {
		if keep(p) {
			idx = append(idx, int32(i))
		}
	}
	out := CompactPairs(len(idx), func(i int) Pair { return names(s.ident(int(idx[i]))) })
	for i, j := range idx {
		out.Set(i, s.At(int(j)))
	}
	return out
}

// names is p's names alone.
func names(p Pair) Pair {
	return Pair{From: p.From, To: p.To, Layer: p.Layer, FromPod: p.FromPod, ToPod: p.ToPod, Family: p.Family}
}

// Slice returns every pair whole: for small runs and tests.
func (s Pairs) Slice() []Pair {
	if s.ident == nil {
		return s.list
	}
	out := make([]Pair, 0, s.n)
	for _, p := range s.All() {
		out = append(out, p)
	}
	return out
}

// MarshalJSON writes the pairs as a JSON array ([] when none); a large
// report streams them instead (report.JSON).
func (s Pairs) MarshalJSON() ([]byte, error) {
	ps := s.Slice()
	if ps == nil {
		ps = []Pair{}
	}
	return json.Marshal(ps)
}

// UnmarshalJSON reads a JSON array of pairs.
func (s *Pairs) UnmarshalJSON(b []byte) error {
	var ps []Pair
	if err := json.Unmarshal(b, &ps); err != nil {
		return err
	}
	*s = PairsOf(ps)
	return nil
}
