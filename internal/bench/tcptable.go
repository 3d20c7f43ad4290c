package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
)

// tcpEntry is one socket of the kernel's TCP table.
type tcpEntry struct {
	local, remote netip.AddrPort
	state         uint8
	txQueue       int64 // bytes sent and not yet acknowledged, or not yet sent
	rxQueue       int64 // bytes received and not yet read
}

// tcpEstablished is the state of an open connection in the kernel's table
// (TCP_ESTABLISHED in include/net/tcp_states.h).
const tcpEstablished = 1

// readTCPTable calls f for each TCP socket of this machine's network
// namespace, read from /proc/net/tcp and /proc/net/tcp6: the hub under
// test runs on this machine, so both ends of each of the tool's
// connections are there. IPv4-mapped addresses are unmapped.
func readTCPTable(f func(tcpEntry)) error {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(name)
		if err != nil {
			if os.IsNotExist(err) && name == "/proc/net/tcp6" {
				continue // no IPv6
			}
			return err
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
		sc.Scan() // the header
		for sc.Scan() {
			if e, ok := parseTCPLine(sc.Bytes()); ok {
				f(e)
			}
		}
		err = sc.Err()
		file.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// parseTCPLine reads a line of /proc/net/tcp or tcp6:
//
//	sl local_address rem_address st tx_queue:rx_queue …
//
// with addresses in hex as the kernel holds them: each 32-bit word of the
// IP address in the machine's byte order, the port as a number.
func parseTCPLine(line []byte) (tcpEntry, bool) {
	var e tcpEntry
	f := bytes.Fields(line)
	if len(f) < 5 {
		return e, false
	}
	var ok1, ok2 bool
	e.local, ok1 = parseTCPAddr(f[1])
	e.remote, ok2 = parseTCPAddr(f[2])
	st, err := strconv.ParseUint(string(f[3]), 16, 8)
	tx, rx, found := bytes.Cut(f[4], []byte(":"))
	if !ok1 || !ok2 || err != nil || !found {
		return e, false
	}
	e.state = uint8(st)
	t, err1 := strconv.ParseInt(string(tx), 16, 64)
	r, err2 := strconv.ParseInt(string(rx), 16, 64)
	if err1 != nil || err2 != nil {
		return e, false
	}
	e.txQueue, e.rxQueue = t, r
	return e, true
}

func parseTCPAddr(b []byte) (netip.AddrPort, bool) {
	ip, port, found := bytes.Cut(b, []byte(":"))
	if !found || (len(ip) != 8 && len(ip) != 32) || len(port) != 4 {
		return netip.AddrPort{}, false
	}
	var raw [16]byte
	n, err := hex.Decode(raw[:], ip)
	if err != nil {
		return netip.AddrPort{}, false
	}
	// Each word was printed as a number: put its bytes back in memory order.
	for i := 0; i < n; i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	p, err := strconv.ParseUint(string(port), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	if n == 4 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(p)), true
}
