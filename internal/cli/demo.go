package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"podpath/internal/lab"
)

// demoSizes are the IP packet sizes the demo's probe table tries: a small
// ping, one that fits a 1400-byte underlay once VXLAN adds 50, and one that
// needs the full 1500.
var demoSizes = []int{84, 1350, 1450}

func newDemo(s Streams) *cobra.Command {
	var name string
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Build a lab, break its MTU the way the seed case broke, and show the evidence",
		Long: `demo builds a 3-node Calico VXLAN lab, makes the underlay towards node3 carry only
1400 bytes (Pod MTU stays 1450, as Calico's auto-detection would leave it), and prints a
Pod-to-Pod probe table with iputils ping: small packets cross everywhere, 1450-byte packets
with Don't Fragment set do not reach node3 or come back from it. It then clears the fault,
probes again, and removes the lab (unless --keep).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), s.Out, name, keep)
		},
	}
	c.Flags().StringVar(&name, "name", "demo", "name of the demo's lab")
	c.Flags().BoolVar(&keep, "keep", false, "leave the lab running afterwards")
	return c
}

func runDemo(ctx context.Context, w io.Writer, name string, keep bool) (err error) {
	l, err := lab.New(name).Nodes(3).Backend(lab.BackendVXLAN).Up(ctx)
	if err != nil {
		return err
	}
	if !keep {
		defer func() {
			if derr := lab.Down(context.WithoutCancel(ctx), name); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
	}
	if err := printStatus(w, &l.State, "text", nil); err != nil {
		return err
	}
	fault, _ := lab.ParseFault("underlay-mtu=node3:1400")
	if err := l.AddFault(ctx, fault); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== fault %s: Pod-to-Pod pings (packets answered / sent) ==\n", fault)
	if err := probeTable(ctx, w, l); err != nil {
		return err
	}
	if err := l.ClearFaults(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "\n== fault cleared ==")
	if err := probeTable(ctx, w, l); err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(w, "\nlab %s kept: `podpath lab status --name %s`, `podpath lab down --name %s`\n", name, name, name)
	}
	return nil
}

type demoRow struct {
	from, to string
	to4      netip.Addr
	results  []lab.PingResult
	err      error
}

func probeTable(ctx context.Context, w io.Writer, l *lab.Lab) error {
	var rows []*demoRow
	for _, a := range l.Spec.Nodes {
		for _, b := range l.Spec.Nodes {
			if a.Name != b.Name && len(a.Pods) > 0 && len(b.Pods) > 0 {
				rows = append(rows, &demoRow{from: a.Pods[0].Name, to: b.Pods[0].Name, to4: b.Pods[0].Address})
			}
		}
	}
	var wg sync.WaitGroup
	for _, r := range rows {
		r.results = make([]lab.PingResult, len(demoSizes))
		for i, size := range demoSizes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := l.Ping(ctx, r.from, r.to4, size, true, 3)
				if err != nil {
					r.err = err
				}
				r.results[i] = res
			}()
		}
	}
	wg.Wait()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "FROM\tTO")
	for _, size := range demoSizes {
		fmt.Fprintf(tw, "\t%dB DF", size)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		if r.err != nil {
			return r.err
		}
		fmt.Fprintf(tw, "%s\t%s", r.from, r.to)
		for _, res := range r.results {
			mark := "ok"
			if res.Received < res.Sent {
				mark = "LOST"
			}
			fmt.Fprintf(tw, "\t%d/%d %s", res.Received, res.Sent, mark)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
