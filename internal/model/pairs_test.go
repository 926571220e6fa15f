package model

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestCompactPairs(t *testing.T) {
	names := func(i int) Pair { return Pair{From: "a", To: string(rune('b' + i)), Layer: LayerNode} }
	s := CompactPairs(130, names)
	if s.Len() != 130 || !reflect.DeepEqual(s.At(129), names(129)) {
		t.Fatalf("a new pair is its names alone: %+v", s.At(129))
	}
	plain := names(70)
	plain.Reachable = true
	s.Set(70, plain)
	if len(s.whole) != 0 || !reflect.DeepEqual(s.At(70), plain) {
		t.Errorf("a plain pair is a bit, not a copy: whole %d, read %+v", len(s.whole), s.At(70))
	}
	odd := plain
	odd.FullSizeLost = 1500
	s.Set(70, odd)
	if !reflect.DeepEqual(s.At(70), odd) {
		t.Errorf("a pair with more than reachability reads back %+v", s.At(70))
	}
	s.Set(70, plain) // and back: the whole copy goes
	if len(s.whole) != 0 || !reflect.DeepEqual(s.At(70), plain) {
		t.Errorf("plain again: whole %d, read %+v", len(s.whole), s.At(70))
	}
	other := plain
	other.To = "elsewhere" // not pair 70's names: kept whole, as given
	s.Set(70, other)
	if !reflect.DeepEqual(s.At(70), other) {
		t.Errorf("a pair under other names reads back %+v", s.At(70))
	}
	b, err := json.Marshal(Report{Pairs: s})
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil || !reflect.DeepEqual(r.Pairs.Slice(), s.Slice()) {
		t.Errorf("JSON round trip: %v", err)
	}
	if b, _ := json.Marshal(Report{}); !json.Valid(b) || !reflect.DeepEqual(string(b[:len(`{"findings":null,"pairs":[]`)]), `{"findings":null,"pairs":[]`) {
		t.Errorf("no pairs: %s", b)
	}
}

// Join and Filter: a dual-stack run's two passes as one list, and each
// family's back, compact or not.
func TestJoinAndFilter(t *testing.T) {
	v4 := func(i int) Pair { return Pair{From: "a", To: string(rune('b' + i)), Layer: LayerPod} }
	v6 := func(i int) Pair { p := v4(i); p.Family = FamilyIPv6; return p }
	a, b := CompactPairs(70, v4), CompactPairs(70, v6)
	for i := range 70 {
		p, q := v4(i), v6(i)
		p.Reachable, q.Reachable = true, i != 3
		q.FullSizeLost = map[bool]int{true: 1500}[i == 3]
		a.Set(i, p)
		b.Set(i, q)
	}
	j := Join(a, b)
	if j.Len() != 140 || j.At(69).Family != "" || j.At(70).Family != FamilyIPv6 || j.At(73).Reachable || j.At(73).FullSizeLost != 1500 {
		t.Fatalf("joined: %d pairs, %+v, %+v, %+v", j.Len(), j.At(69), j.At(70), j.At(73))
	}
	six := j.Filter(func(p Pair) bool { return p.Family == FamilyIPv6 })
	if six.Len() != 70 || !reflect.DeepEqual(six.Slice(), b.Slice()) {
		t.Errorf("filtered IPv6 pairs differ from the pass's")
	}
	if l := Join(PairsOf([]Pair{v4(0)}), PairsOf([]Pair{v6(0)})); l.Len() != 2 || l.At(1).Family != FamilyIPv6 {
		t.Errorf("slices joined: %+v", l.Slice())
	}
	if Join(a, Pairs{}).Len() != 70 {
		t.Error("joining nothing changed the pairs")
	}
}
