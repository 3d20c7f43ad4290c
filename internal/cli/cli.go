// Package cli implements the subcommands of the herald binary. Main is the
// whole program but for reading os.Args and exiting, so that tests can run
// every subcommand in process.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Exit codes of the herald binary, documented in docs/cli.md.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong
)

// Env is what the commands run with: the process's streams and
// environment, or a test's.
type Env struct {
	// Stdin is read by commands asked to (publish -data -); nil reads
	// nothing.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// LookupEnv reads an environment variable; nil means none is set.
	LookupEnv func(string) (string, bool)
	// Listening, if set, is called with the address a server listens on,
	// once it serves.
	Listening func(addr string)
	// BeforeOpen, if set, is called by serve with the address it listens
	// on, before it opens the history; it opens it once BeforeOpen
	// returns. Tests use it to see the server while it starts.
	BeforeOpen func(addr string)
}

// env is what a subcommand runs with.
type env struct {
	Env
	ctx            context.Context
	stdout, stderr io.Writer
}

func (e *env) lookupEnv(name string) (string, bool) {
	if e.LookupEnv == nil {
		return "", false
	}
	return e.LookupEnv(name)
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

// commands lists the subcommands in the order help shows them.
func commands() []command {
	return []command{
		{"serve", "run the hub", runServe},
		{"check-config", "check the configuration of serve without starting the hub", runCheckConfig},
		{"subscribe", "print the events of a hub's topics, or of any event stream", runSubscribe},
		{"publish", "publish an update to a hub", runPublish},
		{"token", "sign a JSON Web Token for a hub", runToken},
		{"bench", "load a hub and measure it (fanout)", runBench},
		{"version", "print the version of herald", runVersion},
		{"help", "show help for herald or one of its commands", runHelp},
	}
}

// usageError is a mistake on the command line: the command prints it with
// its usage and exits with ExitUsage.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// reported is an error the command has already reported, through its
// logger: Run exits with the code it calls for without printing it again.
type reported struct{ err error }

func (r reported) Error() string { return r.err.Error() }
func (r reported) Unwrap() error { return r.err }

// configError is a configuration serve cannot run with: Run prints each
// problem and exits with ExitUsage.
type configError struct{ problems []string }

func (c configError) Error() string { return strings.Join(c.problems, "; ") }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Main runs the herald command line args (without the program name) with
// the process's environment and returns the process's exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Run(ctx, args, Env{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, LookupEnv: os.LookupEnv})
}

// Run runs the command line args in the environment given, and returns the
// exit code.
func Run(ctx context.Context, args []string, environ Env) int {
	stdout, stderr := environ.Stdout, environ.Stderr
	e := &env{Env: environ, ctx: ctx, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return ExitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return ExitOK
	case "-version", "--version":
		name = "version"
	}
	i := slices.IndexFunc(commands(), func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n", name)
		printUsage(stderr)
		return ExitUsage
	}
	err := commands()[i].run(e, rest)
	var ue usageError
	var rep reported
	var ce configError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &rep) && (errors.As(err, &ue) || errors.As(err, &ce)):
		return ExitUsage
	case errors.As(err, &rep):
		return ExitFailure
	case errors.As(err, &ce):
		for _, p := range ce.problems {
			fmt.Fprintf(stderr, "herald %s: %s\n", name, p)
		}
		fmt.Fprintf(stderr, "herald check-config, with the same flags, environment and file, shows every setting and where it came from.\n")
		return ExitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "herald %s: %v\nRun 'herald help %s' for usage.\n", name, err, name)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
		return ExitFailure
	}
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("herald is a Server-Sent Events hub that speaks the Mercure protocol.\n\n")
	b.WriteString("Usage:\n\n\therald <command> [flags]\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "\t%-14s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'herald help <command>' for the flags of a command.\n")
	io.WriteString(w, b.String())
}

// newFlags returns the flag set of a subcommand, printing its usage to the
// command's stderr.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs, turning a bad flag into a usage error, which
// Run prints with a pointer to the command's help rather than the whole
// of it; -h prints the help.
func parse(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	var printed bytes.Buffer // the flag package's message and usage
	fs.SetOutput(&printed)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = printed.WriteTo(out)
			return err
		}
		return usageError{err}
	}
	return nil
}

func runHelp(e *env, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return nil
	}
	if len(args) > 1 {
		return usagef("help takes one command name, got %d arguments", len(args))
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			return c.run(&env{Env: e.Env, ctx: e.ctx, stdout: e.stdout, stderr: e.stdout}, []string{"-h"})
		}
	}
	if args[0] == "help" {
		printUsage(e.stdout)
		return nil
	}
	return usagef("unknown command %q", args[0])
}
