package report

import (
	"bytes"
	"encoding/json"
	"testing"

	"podpath/internal/model"
)

// The streamed JSON is encoding/json's, byte for byte, with pairs, with
// none, and with compact pairs.
func TestJSONStreamsWhatEncodingJSONWrites(t *testing.T) {
	loss := 0.0
	pairs := []model.Pair{
		{From: "n1", To: "n2", Layer: model.LayerNode, Reachable: true, PathMTU: 1500, IfaceMTU: 1500, RTTMs: &model.Percentiles{P50: 0.1}, ICMPLossPct: &loss, Errors: []string{"a <b> & c"}},
		{From: "n2", To: "n1", Layer: model.LayerPod, FromPod: "p2", ToPod: "p1", Unknown: "the controller could not ask"},
	}
	full := model.Report{
		Findings:   []model.Finding{{ID: "mtu-blackhole", Severity: "error", Title: "t", Nodes: []string{"n2"}, Pairs: []model.PairRef{{From: "n1", To: "n2", Layer: model.LayerNode}}}},
		Pairs:      model.PairsOf(pairs),
		Nodes:      []model.NodeInfo{{Name: "n1", Address: "10.0.0.1", Facts: &model.Facts{Links: []model.Link{{Name: "eth0", MTU: 1500}}}}},
		Services:   []model.Pair{{From: "n1", To: "n2", Layer: model.LayerService, Service: "podpath-1/backend-1 10.96.0.2:7946", Reachable: true}},
		DurationMs: 1234.5,
		Config:     &model.Config{Source: "inventory", PodMTU: 1450},
	}
	compact := full
	compact.Pairs = model.CompactPairs(2, func(i int) model.Pair {
		return model.Pair{From: pairs[i].From, To: pairs[i].To, Layer: pairs[i].Layer, FromPod: pairs[i].FromPod, ToPod: pairs[i].ToPod}
	})
	for i, p := range pairs {
		compact.Pairs.Set(i, p)
	}
	for name, r := range map[string]model.Report{"full": full, "compact": compact, "empty": {}} {
		var got bytes.Buffer
		if err := JSON(&got, &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Findings == nil {
			r.Findings = []model.Finding{}
		}
		if r.Nodes == nil {
			r.Nodes = []model.NodeInfo{}
		}
		want, err := json.MarshalIndent(&r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: streamed\n%s\nencoding/json\n%s", name, got.Bytes(), want)
		}
	}
}
