//go:build !agentonly

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"podpath/internal/cluster/inventory"
	"podpath/internal/lab"
	"podpath/internal/model"
	"podpath/internal/plan"
	"podpath/internal/report"
)

// demoFault is the seed case: VXLAN with Pod MTU 1450 over an underlay
// towards node3 that carries only 1400 bytes.
const demoFault = "underlay-mtu=node3:1400"

func newDemo(s Streams) *cobra.Command {
	var name string
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "The seed case end to end: build a lab, break its MTU, diagnose, fix, re-check",
		Long: `demo builds a 3-node Calico VXLAN lab with agents, makes the underlay towards node3 carry
only 1400 bytes (the Pods keep MTU 1450, as Calico's auto-detection would leave them), and runs
the doctor: it names the MTU black hole, node3, and the Pod MTU to set. demo then applies that
MTU to the lab's Pods and tunnels, as Calico does after the change, and runs the doctor again;
then restores the underlay and checks once more. The lab is removed at the end (unless --keep).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), s, name, keep)
		},
	}
	c.Flags().StringVar(&name, "name", "demo", "name of the demo's lab")
	c.Flags().BoolVar(&keep, "keep", false, "leave the lab running afterwards")
	return c
}

func runDemo(ctx context.Context, s Streams, name string, keep bool) (err error) {
	w := s.Out
	start := time.Now()
	fmt.Fprintf(w, "== 1. A Kubespray-style Calico cluster: 3 nodes, VXLAN, Pod MTU 1450 (lab %q)\n", name)
	l, err := lab.New(name).Nodes(3).Backend(lab.BackendVXLAN).Agents(true).Up(ctx)
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
	inv, err := inventory.Load(l.Inventory)
	if err != nil {
		return err
	}
	token, err := readTokenFile(inv.TokenFile)
	if err != nil {
		return err
	}
	jobs := plan.Mesh(inv, model.LayerNode, model.LayerPod)
	src := &source{inv: inv, token: token, close: func() {}}
	doctor := func() (*model.Report, error) {
		return diagnoseRun(ctx, src, jobs, DefaultDoctorTimeout, newProgress(io.Discard)) // the demo narrates itself
	}

	fault, _ := lab.ParseFault(demoFault)
	if err := l.AddFault(ctx, fault); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== 2. Break it as the seed case broke: %s (the path towards node3 carries 1400 bytes, silently)\n", demoFault)
	fmt.Fprintln(w, "   podpath doctor:")
	fmt.Fprintln(w)
	rep, err := doctor()
	if err != nil {
		return err
	}
	report.DoctorText(indent(w), rep)
	mtu := 0
	for _, f := range rep.Findings {
		if f.ID == "mtu-blackhole" && f.Remedy != nil {
			mtu = f.Remedy.MTU
		}
	}
	if mtu == 0 {
		return fmt.Errorf("the doctor did not find the black hole: %s", findingList(rep))
	}

	fmt.Fprintf(w, "\n== 3. Apply the remedy: Pod MTU %d (the lab sets every Pod and vxlan.calico, as Calico does once Pods restart)\n", mtu)
	if l, err = lab.SetPodMTU(ctx, name, mtu); err != nil {
		return err
	}
	if rep, err = doctor(); err != nil {
		return err
	}
	fmt.Fprintf(w, "   podpath doctor: %s\n", findingList(rep))
	fmt.Fprintln(w, "   Pods are fixed. What is left concerns the hosts' own traffic, which the Pod MTU does not touch.")

	fmt.Fprintln(w, "\n== 4. The other remedy: make the underlay towards node3 carry 1500 bytes again")
	if err := l.ClearFaults(ctx); err != nil {
		return err
	}
	if rep, err = doctor(); err != nil {
		return err
	}
	fmt.Fprintf(w, "   podpath doctor: %s\n", findingList(rep))
	for _, f := range rep.Findings {
		if f.Severity != "info" {
			return fmt.Errorf("the lab is not clean after both remedies: %s", findingList(rep))
		}
	}
	fmt.Fprintf(w, "\nDone in %.1fs.", time.Since(start).Seconds())
	if keep {
		fmt.Fprintf(w, " Lab %s kept: podpath lab status --name %s; podpath lab down --name %s", name, name, name)
	}
	fmt.Fprintln(w)
	return nil
}

// findingList is a one-line summary of a report's findings.
func findingList(r *model.Report) string {
	if len(r.Findings) == 0 {
		return "no findings: clean"
	}
	var parts []string
	errs := 0
	for _, f := range r.Findings {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", f.Severity, f.ID, f.Title))
		if f.Severity == "error" {
			errs++
		}
	}
	head := "no errors; "
	if errs > 0 {
		head = fmt.Sprintf("%d error(s); ", errs)
	}
	return head + strings.Join(parts, "; ")
}

// indent prefixes every line written through it with three spaces.
func indent(w io.Writer) io.Writer { return &indenter{w: w, bol: true} }

type indenter struct {
	w   io.Writer
	bol bool
}

func (d *indenter) Write(p []byte) (int, error) {
	for _, b := range p {
		if d.bol && b != '\n' {
			if _, err := io.WriteString(d.w, "   "); err != nil {
				return 0, err
			}
		}
		if _, err := d.w.Write([]byte{b}); err != nil {
			return 0, err
		}
		d.bol = b == '\n'
	}
	return len(p), nil
}
