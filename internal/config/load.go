package config

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FileEnv is the environment variable that names the configuration
// file when the flag -config is not given.
const FileEnv = "HERALD_CONFIG"

// Loader fills a Config from a flag set, the environment and a file, and
// can say where each value came from.
type Loader struct {
	c      *Config
	opts   []option
	flags  map[string]*flagText // what the command line gave, by option
	file   *flagText            // -config
	byFlag map[string]int       // index in opts
}

// Register registers the options on fs, and -config. A value given on
// the command line is only checked by Load, with every other problem, so
// that parsing fs fails only for flags that do not exist.
func Register(fs *flag.FlagSet) *Loader {
	c := Default()
	l := &Loader{c: &c, opts: c.options(), flags: map[string]*flagText{}, byFlag: map[string]int{}}
	l.file = &flagText{}
	fs.Var(l.file, "config", "read the settings from this TOML `file` (keys named like these flags); flags and environment variables win over it (env "+FileEnv+")")
	for i, o := range l.opts {
		ft := &flagText{show: o.value.String(), isBool: isBoolFlag(o.value)}
		l.flags[o.flag] = ft
		l.byFlag[o.flag] = i
		fs.Var(ft, o.flag, fmt.Sprintf("%s (env %s)", o.usage, strings.Join(o.env, ", ")))
	}
	return l
}

func isBoolFlag(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagText is a flag as the command line gave it, unchecked.
type flagText struct {
	text   string
	set    bool
	show   string // the default, as -help shows it
	isBool bool
}

func (f *flagText) String() string {
	if f == nil {
		return ""
	}
	if f.set {
		return f.text
	}
	return f.show
}
func (f *flagText) Set(s string) error { f.text, f.set = s, true; return nil }
func (f *flagText) IsBoolFlag() bool   { return f.isBool }

// Setting is one option as loaded.
type Setting struct {
	Flag string
	// Value is the value the daemon runs with, as the flag would take it,
	// or, where the option's zero value stands for something else, what it
	// stands for ("4 × batch-interval = 20ms"). A key shows only its
	// length.
	Value string
	// Source is where the value came from: "flag -name", "environment
	// NAME", "MERCURE_EXTRA_DIRECTIVES line 2 (heartbeat 15s)", "SERVER_NAME",
	// "file herald.toml:3" or "default".
	Source string
}

// Loaded is a configuration as Load found it.
type Loaded struct {
	Config Config
	// Settings lists every option, in the order of the flags' help, after
	// the configuration file.
	Settings []Setting
	// Warnings are about settings herald read and cannot honour as they
	// were meant: Mercure's directives without an equivalent, a Caddy site
	// address herald cannot serve as Caddy would. One a setting.
	Warnings []string
}

// given is one value given for an option, as text, and where it came
// from.
type given struct {
	text   string
	source string // for Setting.Source
	where  string // for errors: the source, with the key or variable
}

// Load applies the environment, the file and the defaults to the options,
// once fs has parsed the command line, and checks the result. lookup reads
// an environment variable, such as os.LookupEnv.
//
// An option takes its value from, in order of precedence: its flag; its
// environment variables, herald's own (HERALD_X) before Mercure's
// (MERCURE_X) before the legacy Mercure ones (JWT_KEY, ALLOW_ANONYMOUS);
// Mercure's Caddy settings (MERCURE_EXTRA_DIRECTIVES, MERCURE_TRANSPORT_URL,
// SERVER_NAME); the file of -config or HERALD_CONFIG; its default. Every
// value given is checked, even one that a source of higher precedence
// overrides, and every problem found is returned, joined: values that do
// not parse, unknown keys in the file, and what Validate finds.
func (l *Loader) Load(lookup func(string) (string, bool)) (Loaded, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	var errs []error
	var out Loaded

	// The file.
	path, pathSource := "", "default"
	if l.file.set {
		path, pathSource = l.file.text, "flag -config"
	} else if v, ok := lookup(FileEnv); ok {
		path, pathSource = v, "environment "+FileEnv
	}
	file := map[string]given{}
	if path != "" {
		var ferrs []error
		file, ferrs = readFile(path, l.known())
		errs = append(errs, ferrs...)
	}
	shownPath := path
	if shownPath == "" {
		shownPath = "(none)"
	}
	out.Settings = append(out.Settings, Setting{Flag: "config", Value: shownPath, Source: pathSource})

	// Mercure's Caddy settings.
	mercure, warnings, merrs := readMercure(lookup)
	errs = append(errs, merrs...)
	out.Warnings = append(out.Warnings, warnings...)

	sources := make([]string, len(l.opts))
	wheres := map[string]string{} // the where of each option's value, but a default
	resolve := func(i int, extra []given) {
		o := l.opts[i]
		var cands []given
		if ft := l.flags[o.flag]; ft.set {
			cands = append(cands, given{text: ft.text, source: "flag -" + o.flag, where: "flag -" + o.flag})
		}
		for _, name := range o.env {
			if v, ok := lookup(name); ok {
				cands = append(cands, given{text: v, source: "environment " + name, where: "environment variable " + name})
			}
		}
		cands = append(cands, extra...)
		if g, ok := mercure[o.flag]; ok {
			cands = append(cands, g)
		}
		if g, ok := file[o.flag]; ok {
			cands = append(cands, g)
		}
		sources[i] = "default"
		won := false
		for _, g := range cands {
			// Each value is checked on a scratch option of its own, so
			// that one that is overridden is checked too.
			var scratch Config
			if err := scratch.options()[i].value.Set(g.text); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", g.where, err))
				continue
			}
			if !won {
				_ = o.value.Set(g.text)
				sources[i], won = g.source, true
				wheres[o.flag] = g.where
			}
		}
	}
	addr := l.byFlag["addr"]
	for i := range l.opts {
		if i != addr {
			resolve(i, nil)
		}
	}
	// SERVER_NAME maps to an address by whether herald has a certificate,
	// given or its own development one.
	server, warning := serverName(lookup, l.c.TLSCert != "" || l.c.DevTLS)
	resolve(addr, server)
	if warning != "" && strings.HasPrefix(sources[addr], ServerNameEnv) {
		out.Warnings = append(out.Warnings, warning)
	}

	for i, o := range l.opts {
		out.Settings = append(out.Settings, Setting{Flag: o.flag, Value: l.c.display(o.flag, o.value.String()), Source: sources[i]})
	}
	out.Config = *l.c
	if out.Config.CORSOrigins != nil {
		out.Config.CORSOrigins = slices.Clone(out.Config.CORSOrigins)
	}
	if out.Config.PublishOrigins != nil {
		out.Config.PublishOrigins = slices.Clone(out.Config.PublishOrigins)
	}
	return out, errors.Join(append(errs, placed(l.c.Validate(), wheres))...)
}

// placed says, of each problem with an option's value, where the value
// came from, unless it is the default: "flag -addr: …", "environment
// variable HERALD_ADDR: addr: …", "herald.toml:3: addr: …" rather than
// "addr: …".
func placed(err error, wheres map[string]string) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	errs := j.Unwrap()
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
		var oe *OptionError
		if errors.As(e, &oe) {
			if w, ok := wheres[oe.Option]; ok {
				out[i] = fmt.Errorf("%s: %s: %w", w, oe.Option, oe.Err)
				if w == "flag -"+oe.Option || strings.HasSuffix(w, ": "+oe.Option) {
					out[i] = fmt.Errorf("%s: %w", w, oe.Err)
				}
			}
		}
	}
	return errors.Join(out...)
}

// known returns scratch options, by their key in the file, to check
// values on.
func (l *Loader) known() map[string]option {
	var scratch Config
	opts := scratch.options()
	m := make(map[string]option, len(opts))
	for _, o := range opts {
		m[o.flag] = o
	}
	return m
}

type strValue string

func (v *strValue) String() string     { return string(*v) }
func (v *strValue) Set(s string) error { *v = strValue(s); return nil }

// secretValue is a string that Setting does not show.
type secretValue string

func (v *secretValue) String() string     { return string(*v) }
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

// errBool says how to write a boolean.
func errBool(s string) error {
	return fmt.Errorf("%q is not a boolean: write true or false (or 1, 0)", s)
}

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errBool(s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) IsBoolFlag() bool { return true }

type boolPtrValue struct{ p **bool }

func (v *boolPtrValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return strconv.FormatBool(**v.p)
}
func (v *boolPtrValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errBool(s)
	}
	*v.p = &b
	return nil
}
func (v *boolPtrValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = int64Value(n)
	return nil
}

// DurationHint says how to write a duration, in every message about one
// that does not parse.
const DurationHint = "write it like 5s, 1m30s or 250ms"

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: %s", s, DurationHint)
	}
	*v = durationValue(d)
	return nil
}

// listValue takes origins separated by spaces or commas.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, " ") }
func (v *listValue) Set(s string) error {
	*v = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	return nil
}
