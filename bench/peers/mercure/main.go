// Command mercure is the Mercure hub 0.24.2 (Caddy with the Mercure module),
// built from the Go module proxy to be measured beside herald. It is not
// part of herald; bench/publish.sh builds and runs it.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/dunglas/mercure/caddy"
)

func main() {
	caddycmd.Main()
}
