// Package cli holds podpath's commands, one file per verb.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"podpath/internal/version"
)

// Exit codes, as DESIGN.md fixes them.
const (
	ExitOK       = 0
	ExitFindings = 1 // at least one finding of severity error
	ExitNoRun    = 2 // could not run: bad input, no access, timeout before any result
)

// Streams are the command's standard streams, replaced in tests.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Run runs podpath with args and returns the exit code; errors are printed
// on one line to stderr.
func Run(ctx context.Context, s Streams, args []string) int {
	root := newRoot(s)
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(s.Err, "podpath: %s\n", oneLine(err))
	return ExitNoRun
}

// exitError carries an exit code other than 2 without a message (the
// command has already reported).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// PluginName is the executable's name when kubectl runs it as a plugin
// (`kubectl podpath …` finds kubectl-podpath on the PATH).
const PluginName = "kubectl-podpath"

// CommandName is how help and usage name the command: "podpath", or
// "kubectl podpath" when run as the plugin.
var CommandName = "podpath"

func newRoot(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "podpath",
		Short:         "Find out why Pods on different nodes cannot talk, prove it, and fix it",
		Long:          rootHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: CommandName}
	root.AddCommand(commands(s)...)
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
	}
	return root
}

// refuseUnknownSubcommands makes every command group below the root (a
// command with subcommands and nothing to run itself) refuse an argument
// that names no subcommand, with "unknown command" and exit 2; on its own it
// still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	if !c.Runnable() {
		c.Args = cobra.NoArgs
		c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}

func newVersion(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print podpath's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(s.Out, version.String())
			return nil
		},
	}
}
