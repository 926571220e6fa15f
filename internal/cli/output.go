//go:build !agentonly

package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"podpath/internal/model"
	"podpath/internal/report"
)

// outputFlags are -o and --output-file, alike on every command that
// writes a report.
type outputFlags struct {
	format, file string
	formats      []string
}

// register adds the flags; formats are the -o values, the first the default.
func (o *outputFlags) register(c *cobra.Command, formats ...string) {
	o.formats = formats
	c.Flags().StringVarP(&o.format, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	c.Flags().StringVar(&o.file, "output-file", "", "write the report here instead of standard output (created before anything runs; removed if the run ends without a whole report)")
}

// open checks -o and creates --output-file, before anything runs: a bad
// path must not cost a run.
func (o *outputFlags) open(s Streams) (*report.Output, error) {
	if err := checkOutput(o.format, o.formats...); err != nil {
		return nil, err
	}
	return report.Create(o.file, s.Out)
}

// write renders rep in the chosen format and ends the output.
func (o *outputFlags) write(out *report.Output, rep *model.Report, text func(io.Writer, *model.Report)) error {
	return out.Finish(report.Render(out, o.format, rep, text))
}

func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("output format %q: use %s", got, strings.Join(allowed, " or "))
}
