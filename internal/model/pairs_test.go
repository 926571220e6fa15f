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
