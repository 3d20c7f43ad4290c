package cli

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// listenError says why serve could not listen on addr, the value of the
// option named, and what to do about it: a port in use, one that needs
// privileges, an address that is not this machine's. The error wraps
// err.
func listenError(option, addr string, err error) error {
	env := "HERALD_" + strings.ToUpper(strings.ReplaceAll(option, "-", "_"))
	choose := fmt.Sprintf("choose another with -%s or %s", option, env)
	var why string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		why = "the port is in use; " + choose
	case errors.Is(err, syscall.EACCES):
		why = "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; " + choose
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		why = "the address is not one of this machine's; " + choose
	default:
		return fmt.Errorf("-%s %s: %w", option, addr, err)
	}
	return fmt.Errorf("-%s %s: %s (%w)", option, addr, why, err)
}
