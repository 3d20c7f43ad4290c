// Package daemon turns a config.Config into the running parts of a herald
// node: the hub's configuration (with the development setup when no key is
// configured), the history, the web page, and the routes that serve them.
// It is the one place that picks the parts from the configuration;
// internal/cli keeps the flags, the output, the listeners, the signals and
// the shutdown.
//
// Start with NewPlan, which builds what the configuration asks for without
// opening anything (so check-config can use it too), and Plan.Open, which
// opens the history and makes the hub, returning a Node to serve.
package daemon
