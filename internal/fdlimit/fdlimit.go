// Package fdlimit reads how many files the process may have open, which
// bounds the connections a server can hold: the hub sizes its default
// limit on connections by it, and check-config compares the configured
// limit with it.
package fdlimit
