package doctor

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"podpath/internal/agent"
	"podpath/internal/cluster"
	"podpath/internal/deploy"
	"podpath/internal/diagnose"
	"podpath/internal/measure"
	"podpath/internal/model"
	"podpath/internal/plan"
	"podpath/internal/probe"
)

// dnsSenders bounds how many Pod agents ask the cluster DNS at once: a
// few CoreDNS Pods serve the whole cluster, and the doctor's questions
// must stay a small share of what they answer (16 senders × 3 servers ×
// 4 questions: under 200 at once, a few hundred a second).
const dnsSenders = 16

// dnsRetryWait is how long a failed DNS check waits before it is asked
// once more, alone: one lost answer, or CoreDNS's cache filling, is no
// failure of the path.
const dnsRetryWait = time.Second

// dnsQuestion is one question of every DNS check, and the answer
// expected.
type dnsQuestion struct {
	query probe.DNSQuery
	size  string // small | large
	want  int    // the large answer's size in bytes over UDP
}

// largeDNSBytes is the large answer's size over UDP: its records (16
// bytes each, the name compressed), the header, the question and EDNS0's
// record.
func largeDNSBytes(name string) int {
	return 12 + len(name) + 2 + 4 + deploy.LargeDNSRecords*16 + 11
}

// dnsQuestions: a small answer (the API server's Service, which every
// cluster has) and the run's large one, each over UDP and over TCP, as a
// Pod's resolver asks (UDP, then TCP for what does not fit).
func dnsQuestions(domain, large string) []dnsQuestion {
	small := "kubernetes.default.svc." + domain
	return []dnsQuestion{
		{query: probe.DNSQuery{Name: small, Type: "A"}, size: "small"},
		{query: probe.DNSQuery{Name: small, Type: "A", TCP: true}, size: "small"},
		{query: probe.DNSQuery{Name: large, Type: "A"}, size: "large", want: largeDNSBytes(large)},
		// Over TCP CoreDNS sends it uncompressed (about 11 KB): no size to expect.
		{query: probe.DNSQuery{Name: large, Type: "A", TCP: true}, size: "large"},
	}
}

// dnsJobs plans the cluster DNS checks: each node's Pod agent asks the
// cluster DNS Service and every CoreDNS Pod directly.
func dnsJobs(s *cluster.Session) []plan.Job {
	d := s.DNS
	if d == nil || s.DNSLarge == "" {
		return nil
	}
	var servers []plan.Endpoint
	servers = append(servers, plan.Endpoint{Pod: d.Service, Agent: netip.AddrPortFrom(d.Address, uint16(d.Port)).String()})
	for _, p := range d.Pods {
		if !p.Ready {
			// kube-proxy sends it nothing, and its silence is its own
			// (starting, failing its readiness), not the network's: the
			// session's notes name it.
			continue
		}
		servers = append(servers, plan.Endpoint{Node: p.Node, Pod: p.Name, Agent: netip.AddrPortFrom(p.Address, uint16(d.Port)).String()})
	}
	var jobs []plan.Job
	for _, n := range s.Inventory.Nodes {
		if len(n.Pods) == 0 || n.Pods[0].Agent == "" {
			continue
		}
		p := n.Pods[0]
		jobs = append(jobs, plan.Job{Layer: model.LayerDNS, From: plan.Endpoint{Node: n.Name, Pod: p.Name, Agent: p.Agent, Netns: p.Netns},
			Peers: slices.Clone(servers)})
	}
	return jobs
}

// checkDNS asks the questions, dnsSenders at a time, then once more,
// alone, what failed.
func checkDNS(ctx context.Context, r *measure.Runner, s *cluster.Session, jobs []plan.Job) []model.Pair {
	qs := dnsQuestions(s.DNS.Domain, s.DNSLarge)
	req := agent.ProbeRequest{}
	for _, q := range qs {
		req.DNS = append(req.DNS, q.query)
	}
	run := func(jobs []plan.Job) []model.Pair {
		var out []model.Pair
		for batch := range slices.Chunk(jobs, dnsSenders) {
			if ctx.Err() != nil {
				break
			}
			out = append(out, r.Run(ctx, batch, req)...)
		}
		for i := range out {
			nameDNS(&out[i], s, qs)
		}
		return out
	}
	pairs := run(jobs)
	var again []plan.Job
	k := 0
	for _, j := range jobs {
		var failed []plan.Endpoint
		for _, peer := range j.Peers {
			if k < len(pairs) && pairs[k].Measured() && !diagnose.DNSOK(pairs[k]) {
				failed = append(failed, peer)
			}
			k++
		}
		if len(failed) > 0 {
			again = append(again, plan.Job{Layer: j.Layer, From: j.From, Peers: failed})
		}
	}
	if len(again) == 0 {
		return pairs
	}
	select {
	case <-ctx.Done():
		return pairs
	case <-time.After(dnsRetryWait):
	}
	for _, q := range run(again) {
		i := slices.IndexFunc(pairs, func(p model.Pair) bool { return p.From == q.From && p.ToPod == q.ToPod && p.Service == q.Service })
		if i < 0 || !q.Measured() {
			continue
		}
		q.Retried = "asked again " + dnsRetryWait.String() + " later, alone"
		if diagnose.DNSOK(q) {
			// The second look passed: the first failure was a moment's.
			q.Retried += "; the first time: " + firstFailure(pairs[i])
		}
		pairs[i] = q
	}
	return pairs
}

// nameDNS gives a DNS check its server's words and each answer the
// question's size; the Service is no node's.
func nameDNS(p *model.Pair, s *cluster.Session, qs []dnsQuestion) {
	if p.ToPod == s.DNS.Service {
		p.To, p.ToPod = "", ""
		p.Service = s.DNS.Service + " " + netip.AddrPortFrom(s.DNS.Address, uint16(s.DNS.Port)).String()
	}
	for i := range p.DNS {
		if i < len(qs) {
			p.DNS[i].Size, p.DNS[i].Want = qs[i].size, qs[i].want
		}
	}
}

func firstFailure(p model.Pair) string {
	for _, a := range p.DNS {
		if !a.OK() {
			return a.Transport + " " + a.Size + ": " + diagnose.DNSFailure(a)
		}
	}
	return "?"
}
