package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The environment variables of Mercure's Caddy-based image that herald
// reads besides the MERCURE_X aliases of its options.
const (
	// ExtraDirectivesEnv holds Caddyfile directives of the mercure block,
	// one a line.
	ExtraDirectivesEnv = "MERCURE_EXTRA_DIRECTIVES"
	// TransportURLEnv is the transport_url of the image's Caddyfile.
	TransportURLEnv = "MERCURE_TRANSPORT_URL"
	// ServerNameEnv is Caddy's site address: where the hub listens.
	ServerNameEnv = "SERVER_NAME"
)

// maxDirectivesDepth bounds the nesting of blocks in
// MERCURE_EXTRA_DIRECTIVES: Mercure's directives nest one level
// (transport bolt { path … }); the bound keeps a malformed value from
// making the parser recurse without end.
const maxDirectivesDepth = 8

// directive is one Caddyfile directive: its name, its arguments and its
// block of subdirectives, if any.
type directive struct {
	line  int
	name  string
	args  []string
	block []*directive
}

// String is the directive as written on its line, without its block.
func (d *directive) String() string {
	return strings.Join(append([]string{d.name}, d.args...), " ")
}

// token is one word of a Caddyfile: text, or a line break.
type token struct {
	text   string
	line   int
	quoted bool
	eol    bool
}

// tokenize splits Caddyfile text into words and line breaks: words are
// separated by spaces or tabs; "…" quotes a word with spaces (\" is a
// quote within), `…` quotes one raw; # begins a comment to the end of the
// line. The two characters \n outside quotes are a line break too, as a
// shell's "anonymous\nsubscriptions" writes them.
func tokenize(s string) ([]token, error) {
	var toks []token
	line := 1
	var word strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			toks = append(toks, token{text: word.String(), line: line, quoted: quoted})
		}
		word.Reset()
		inWord, quoted = false, false
	}
	eol := func() {
		flush()
		toks = append(toks, token{line: line, eol: true})
		line++
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			eol()
		case c == '\r':
			flush()
		case c == '\\' && i+1 < len(s) && s[i+1] == 'n':
			eol()
			i++
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			for i+1 < len(s) && s[i+1] != '\n' {
				i++
			}
		case (c == '"' || c == '`') && !inWord:
			start := line
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				switch {
				case c == '"' && s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\'):
					j++
				case s[j] == '\n':
					line++
				}
				word.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, fmt.Errorf("line %d: a quote %c that is not closed", start, c)
			}
			inWord, quoted = true, true
			i = j
			flush()
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return toks, nil
}

var (
	// parseTimeEnv is Caddy's {$NAME} and {$NAME:default}, replaced when
	// the Caddyfile is read.
	parseTimeEnv = regexp.MustCompile(`\{\$([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}`)
	// runtimeEnv is Caddy's {env.NAME} placeholder, replaced in the value
	// of a word.
	runtimeEnv = regexp.MustCompile(`\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// parseDirectives parses the directives of a Caddyfile block, one a line,
// each with an optional block in braces, after replacing Caddy's
// environment placeholders with lookup.
func parseDirectives(s string, lookup func(string) (string, bool)) ([]*directive, error) {
	s = parseTimeEnv.ReplaceAllStringFunc(s, func(m string) string {
		sub := parseTimeEnv.FindStringSubmatch(m)
		if v, ok := lookup(sub[1]); ok {
			return v
		}
		return sub[2]
	})
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	root := &directive{}
	stack := []*directive{root}
	var cur *directive
	finish := func() {
		if cur != nil {
			top := stack[len(stack)-1]
			top.block = append(top.block, cur)
			cur = nil
		}
	}
	for _, t := range toks {
		switch {
		case t.eol:
			finish()
		case !t.quoted && t.text == "{":
			if cur == nil {
				return nil, fmt.Errorf("line %d: a block { with no directive before it", t.line)
			}
			if len(stack) > maxDirectivesDepth {
				return nil, fmt.Errorf("line %d: blocks nested more than %d deep", t.line, maxDirectivesDepth)
			}
			d := cur
			finish()
			stack = append(stack, d)
		case !t.quoted && t.text == "}":
			finish()
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: a } that closes no block", t.line)
			}
			stack = stack[:len(stack)-1]
		default:
			text := runtimeEnv.ReplaceAllStringFunc(t.text, func(m string) string {
				v, _ := lookup(runtimeEnv.FindStringSubmatch(m)[1])
				return v
			})
			if cur == nil {
				cur = &directive{line: t.line, name: text}
			} else {
				cur.args = append(cur.args, text)
			}
		}
	}
	finish()
	if len(stack) > 1 {
		return nil, fmt.Errorf("line %d: a block { that is not closed", stack[len(stack)-1].line)
	}
	return root.block, nil
}

// mercure gathers what Mercure's settings give herald's options.
type mercure struct {
	values   map[string]given
	warnings []string
	errs     []error
}

// readMercure reads Mercure's MERCURE_TRANSPORT_URL and
// MERCURE_EXTRA_DIRECTIVES: the values they give herald's options, by
// option, a warning for each directive herald cannot honour, and the
// problems (a directive that does not parse, or misses its argument).
func readMercure(lookup func(string) (string, bool)) (map[string]given, []string, []error) {
	m := &mercure{values: map[string]given{}}
	if v, ok := lookup(TransportURLEnv); ok && strings.TrimSpace(v) != "" {
		d := &directive{name: "transport_url", args: []string{strings.TrimSpace(v)}}
		m.transportURL("environment "+TransportURLEnv, d)
	}
	raw, ok := lookup(ExtraDirectivesEnv)
	if !ok || strings.TrimSpace(raw) == "" {
		return m.values, m.warnings, m.errs
	}
	ds, err := parseDirectives(raw, lookup)
	if err != nil {
		return m.values, m.warnings, []error{fmt.Errorf("%s: %w", ExtraDirectivesEnv, err)}
	}
	for _, d := range ds {
		m.directive(d)
	}
	return m.values, m.warnings, m.errs
}

// at names a directive of MERCURE_EXTRA_DIRECTIVES in messages.
func at(d *directive) string {
	return fmt.Sprintf("%s line %d: %s", ExtraDirectivesEnv, d.line, d.name)
}

func (m *mercure) warnf(d *directive, format string, args ...any) {
	m.warnings = append(m.warnings, at(d)+": "+fmt.Sprintf(format, args...))
}

func (m *mercure) errorf(d *directive, format string, args ...any) {
	m.errs = append(m.errs, fmt.Errorf("%s: %s", at(d), fmt.Sprintf(format, args...)))
}

// set gives option the value text from directive d; shown is the
// directive as check-config shows it (without a key).
func (m *mercure) set(option, text string, d *directive, shown string) {
	m.values[option] = given{
		text:   text,
		source: fmt.Sprintf("%s (%s)", ExtraDirectivesEnv, shown),
		where:  fmt.Sprintf("%s line %d (%s)", ExtraDirectivesEnv, d.line, shown),
	}
}

// The messages of the directives herald does not honour: what it does
// instead.
const (
	noUI    = "herald serves one web page, with a debugger and a demo, at / (-ui, on by default); use it, or herald subscribe and herald publish (docs/cli.md): ignored"
	noCache = "herald needs no cache here: it indexes exact topics and matches URI templates by their literal text (-max-templates bounds them): ignored"
	noJWKS  = "herald does not fetch key sets; give the public key in PEM form with -publisher-jwt-key/-subscriber-jwt-key and the algorithm with -publisher-jwt-alg/-subscriber-jwt-alg: ignored"
)

// directive maps one of Mercure's directives to herald's options, or
// warns that herald cannot honour it.
func (m *mercure) directive(d *directive) {
	one := func(what string) (string, bool) {
		if len(d.args) != 1 {
			m.errorf(d, "takes one argument, %s, and has %d", what, len(d.args))
			return "", false
		}
		return d.args[0], true
	}
	switch d.name {
	case "anonymous", "subscriptions":
		switch len(d.args) {
		case 0:
			m.set(d.name, "true", d, d.String())
		case 1:
			m.set(d.name, d.args[0], d, d.String())
		default:
			m.errorf(d, "takes no argument, and has %d", len(d.args))
		}
	case "cors_origins", "publish_origins":
		m.set(strings.ReplaceAll(d.name, "_", "-"), strings.Join(d.args, " "), d, d.String())
	case "cookie_name":
		if v, ok := one("a cookie's name"); ok {
			m.set("cookie-name", v, d, d.String())
		}
	case "heartbeat", "write_timeout":
		if v, ok := one("a duration such as 15s"); ok {
			m.set(strings.ReplaceAll(d.name, "_", "-"), v, d, d.String())
		}
	case "dispatch_timeout":
		v, ok := one("a duration such as 5s")
		switch {
		case !ok:
		case v == "0" || v == "0s":
			m.warnf(d, "herald always bounds a write to a subscriber, so that a stuck one cannot hold memory: dispatch-timeout keeps its value (5s by default)")
		default:
			m.set("dispatch-timeout", v, d, d.String())
		}
	case "publisher_jwt", "subscriber_jwt":
		who := strings.TrimSuffix(d.name, "_jwt")
		if len(d.args) < 1 || len(d.args) > 2 {
			m.errorf(d, "takes a key and an optional algorithm, and has %d arguments", len(d.args))
			return
		}
		if d.args[0] != "" {
			m.set(who+"-jwt-key", d.args[0], d, d.name+" (key hidden)")
		}
		if len(d.args) == 2 && d.args[1] != "" {
			m.set(who+"-jwt-alg", d.args[1], d, d.name+" … "+d.args[1])
		}
	case "transport_url":
		if _, ok := one("a URL such as bolt:///data/mercure.db"); ok {
			m.transportURL("", d)
		}
	case "transport":
		m.transport(d)
	case "publisher_jwks_url", "subscriber_jwks_url":
		m.warnf(d, noJWKS)
	case "ui", "demo":
		// Mercure's UI and demo are herald's page: on by default, and on
		// when asked for, whatever -ui's default becomes.
		m.set("ui", "true", d, d.String())
	case "debugger", "playground":
		m.warnf(d, noUI)
	case "topic_selector_cache", "topic_matcher_cache", "subscriber_list_cache_size":
		m.warnf(d, noCache)
	case "protocol_version_compatibility":
		if len(d.args) == 1 && d.args[0] == "7" {
			return // herald speaks the 0.x dialect and its legacy query always
		}
		m.warnf(d, "herald speaks Mercure's 0.x protocol (draft 07, with its legacy Last-Event-ID query parameter), whatever this says: ignored")
	default:
		m.warnf(d, "not a Mercure directive herald knows: ignored")
	}
}

// transportURL maps Mercure's transport_url: bolt://PATH to store bolt
// in PATH's directory, local:// to store memory. where, when not empty,
// names the variable it came from instead of the directive.
func (m *mercure) transportURL(where string, d *directive) {
	u, err := url.Parse(d.args[0])
	if err != nil {
		m.transportError(where, d, fmt.Sprintf("%q is not a URL", d.args[0]))
		return
	}
	var params []*directive
	for k, vs := range u.Query() {
		for _, v := range vs {
			params = append(params, &directive{line: d.line, name: k, args: []string{v}})
		}
	}
	slices.SortFunc(params, func(a, b *directive) int { return strings.Compare(a.name, b.name) })
	if u.Scheme == "redis" || u.Scheme == "rediss" {
		// The server's URL is herald's -redis; the query holds the
		// transport's parameters.
		u.RawQuery = ""
		m.store(where, d, "redis", u.String(), params)
		return
	}
	m.store(where, d, u.Scheme, u.Host+u.Path, params)
}

func (m *mercure) transportError(where string, d *directive, msg string) {
	if where != "" {
		m.errs = append(m.errs, fmt.Errorf("%s: %s", where, msg))
		return
	}
	m.errorf(d, "%s", msg)
}

// transport maps Mercure's transport directive: transport bolt { path …
// size … } or transport local.
func (m *mercure) transport(d *directive) {
	if len(d.args) != 1 {
		m.errorf(d, "takes one argument, the transport's name, and has %d", len(d.args))
		return
	}
	var path string
	var params []*directive
	for _, sub := range d.block {
		if (sub.name == "path" || d.args[0] == "redis" && (sub.name == "url" || sub.name == "address")) && len(sub.args) == 1 {
			path = sub.args[0]
			continue
		}
		params = append(params, sub)
	}
	m.store("", d, d.args[0], path, params)
}

// store maps a Mercure transport, by its name, its path and its
// parameters, to herald's store.
func (m *mercure) store(where string, d *directive, name, path string, params []*directive) {
	source := func(option, text, shown string) {
		if where != "" {
			m.values[option] = given{text: text, source: where, where: where}
			return
		}
		m.set(option, text, d, shown)
	}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if where != "" {
			m.warnings = append(m.warnings, where+": "+msg)
			return
		}
		m.warnf(d, "%s", msg)
	}
	switch name {
	case "bolt":
		source("store", "bolt", d.name+" bolt")
		if path == "" {
			path = "mercure.db"
		} else {
			source("data-dir", filepath.Dir(path), d.name+" bolt, path "+path)
		}
		warn("herald keeps a bolt history of its own, history.db in -data-dir (%s); it cannot read Mercure's %s: the history starts empty", filepath.Dir(path), path)
		for _, p := range params {
			switch {
			case p.name == "size" && len(p.args) == 1 && p.args[0] == "0":
				warn("size 0: herald's history is always bounded; -history-size keeps its value (1000000 events by default)")
			case p.name == "size" && len(p.args) == 1:
				source("history-size", p.args[0], d.name+" bolt, size "+p.args[0])
			default:
				warn("%s: herald has no such setting (it trims its history as it appends, by -history-size and -history-max-age): ignored", p.name)
			}
		}
	case "local":
		source("store", "memory", d.name+" local")
		if len(params) > 0 {
			warn("the local transport takes no parameters: %s ignored", params[0].name)
		}
	case "redis":
		// Mercure's paid edition keeps its history in a Redis stream too;
		// herald's keys are its own, so the history starts empty.
		if path == "" {
			m.transportError(where, d, "the redis transport names no server (url)")
			return
		}
		if !strings.Contains(path, "://") {
			path = "redis://" + path // an address, host:port
		}
		source("redis", path, d.name+" redis")
		warn("herald keeps a history of its own in Redis, under -redis-prefix (herald by default); it cannot read Mercure's stream: the history starts empty")
		for _, p := range params {
			switch {
			case (p.name == "max_length" || p.name == "size") && len(p.args) == 1 && p.args[0] != "0":
				source("history-size", p.args[0], d.name+" redis, "+p.name+" "+p.args[0])
			default:
				warn("%s: herald has no such setting for its Redis history: ignored", p.name)
			}
		}
	case "":
		m.transportError(where, d, "no transport named")
	default:
		warn("herald has no %s transport: it keeps its history with -store (pebble, bolt or memory) on this node, or in Redis (-redis)", name)
	}
}

// serverName maps Caddy's site address, SERVER_NAME, to a value of addr,
// and says what herald cannot do of it. Caddy listens on every interface
// at the address's port; with a host name and no port it serves HTTPS on
// :443 with a certificate it obtains, and redirects :80 to it. herald
// obtains no certificate: it listens on :443 if it has one (-tls-cert, or
// -dev-tls),
// and on :80 in plain HTTP otherwise, with a warning.
func serverName(lookup func(string) (string, bool), haveCert bool) (addr []given, warning string) {
	v, ok := lookup(ServerNameEnv)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, ""
	}
	sites := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	scheme, host, port := splitSite(sites[0])
	var warnings []string
	https := scheme == "https" || port == "443" || (scheme != "http" && host != "" && port != "80")
	if port == "" {
		switch {
		case scheme == "http":
			port = "80"
		case haveCert:
			port = "443"
		default:
			port = "80"
		}
	}
	if https && !haveCert {
		warnings = append(warnings, fmt.Sprintf("Caddy would serve HTTPS for %s with a certificate it obtains; herald obtains none, so it serves plain HTTP on :%s. For HTTPS give herald -tls-cert and -tls-key (or -dev-tls on a laptop), or terminate TLS in a proxy in front of it", sites[0], port))
	}
	if len(sites) > 1 {
		warnings = append(warnings, fmt.Sprintf("herald listens on one address, the first site's: :%s", port))
	}
	g := given{text: ":" + port, source: fmt.Sprintf("%s (%s)", ServerNameEnv, v), where: "environment variable " + ServerNameEnv}
	if len(warnings) > 0 {
		warning = ServerNameEnv + ": " + strings.Join(warnings, "; ")
	}
	return []given{g}, warning
}

// splitSite splits a Caddy site address, [scheme://]host[:port][/path],
// into its parts.
func splitSite(site string) (scheme, host, port string) {
	if i := strings.Index(site, "://"); i >= 0 {
		scheme, site = strings.ToLower(site[:i]), site[i+3:]
	}
	if i := strings.IndexByte(site, '/'); i >= 0 {
		site = site[:i]
	}
	h, p, err := net.SplitHostPort(site)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && strings.Contains(ae.Err, "missing port") {
			return scheme, strings.Trim(site, "[]"), ""
		}
		return scheme, site, ""
	}
	return scheme, h, p
}
