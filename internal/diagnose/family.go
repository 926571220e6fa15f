package diagnose

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"podpath/internal/model"
)

// WithIPv6 merges a dual-stack cluster's two diagnoses: the first
// addresses' findings, and those of its IPv6 pass (Evidence.Family).
// An IPv6 finding the first pass made as well (sameFinding) is said
// once; the others are marked IPv6 (Finding.Family, the title). The Pods have one
// MTU for both families, so an MTU finding of one family whose remedy
// MTU is above the other's says that the smaller must be set.
func WithIPv6(first, v6 []model.Finding) []model.Finding {
	out := slices.Clone(first)
	for _, f := range v6 {
		if slices.ContainsFunc(first, func(g model.Finding) bool { return sameFinding(f, g) }) {
			continue
		}
		f.Family = model.FamilyIPv6
		f.Title += " (IPv6)"
		out = append(out, f)
	}
	smallest := map[string]int{} // family → smallest remedy MTU of its MTU findings
	for _, f := range out {
		if isMTUFinding(f) && (smallest[f.Family] == 0 || f.Remedy.MTU < smallest[f.Family]) {
			smallest[f.Family] = f.Remedy.MTU
		}
	}
	if len(out) > len(first) && smallest[""] > 0 && smallest[model.FamilyIPv6] > 0 {
		for i := range out {
			f := &out[i]
			other := model.FamilyIPv6
			if f.Family == model.FamilyIPv6 {
				other = ""
			}
			if !isMTUFinding(*f) || f.Remedy.MTU <= smallest[other] {
				continue
			}
			// Remedy.MTU stays this family's; what to run sets the smaller.
			r := *f.Remedy
			r.Summary += fmt.Sprintf(" This cluster is dual-stack and its %s paths need %d (the finding about them): a Pod has one MTU for both families, so set %d.",
				familyWord(other), smallest[other], smallest[other])
			r.Commands = make([]string, len(f.Remedy.Commands))
			for k, c := range f.Remedy.Commands {
				r.Commands[k] = mtuNumber(f.Remedy.MTU).ReplaceAllString(c, strconv.Itoa(smallest[other]))
			}
			f.Remedy = &r
		}
	}
	sortFindings(out)
	return out
}

// sameFinding: v6 says what first says, by the same rule about the same
// nodes, with the same evidence or none of IPv6's pairs (a rule reading
// host facts that both passes share).
func sameFinding(v6, first model.Finding) bool {
	return v6.ID == first.ID && v6.Title == first.Title && slices.Equal(v6.Nodes, first.Nodes) &&
		(len(v6.Pairs) == 0 || slices.Equal(v6.Evidence, first.Evidence))
}

// isMTUFinding: a finding whose remedy is a Pod MTU.
func isMTUFinding(f model.Finding) bool {
	return f.Remedy != nil && f.Remedy.MTU > 0
}

// mtuNumber matches mtu as a number of its own in a command.
func mtuNumber(mtu int) *regexp.Regexp {
	return regexp.MustCompile(`\b` + strconv.Itoa(mtu) + `\b`)
}

func familyWord(family string) string {
	if family == model.FamilyIPv6 {
		return "IPv6"
	}
	return "IPv4"
}
