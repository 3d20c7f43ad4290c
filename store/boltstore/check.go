package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The layout of a bbolt meta page (bbolt's format version 2), which
// checkFile reads before bbolt maps the file: a 16-byte page header, then
// magic, version, page size and flags (4 bytes each), the root bucket (16),
// the freelist page, the high-water page and the transaction ID (8 each),
// and an FNV-64a checksum of all of that.
const (
	pageHeaderSize = 16
	metaSize       = 64
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
)

type metaPage struct {
	pageSize uint32
	pgid     uint64 // the number of pages the file must hold
	txid     uint64
}

// checkFile refuses, before bbolt maps it, a file too short for the pages
// its newest valid meta page says it holds: bbolt would fault reading past
// its end.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil // bbolt initializes an empty file
	}
	m0, ok0 := readMeta(f, 0)
	if !ok0 && m0.pageSize == 0 {
		return errors.New("not a bbolt file")
	}
	size := m0.pageSize
	if size == 0 {
		size = 4096
	}
	m1, ok1 := readMeta(f, int64(size))
	var m metaPage
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return errors.New("both bbolt meta pages are damaged")
	}
	if need := int64(m.pgid) * int64(m.pageSize); st.Size() < need {
		return fmt.Errorf("the file is truncated: %d bytes, its last transaction needs %d", st.Size(), need)
	}
	return nil
}

// readMeta reads the meta page at off; ok says whether it is valid. A
// page with a valid magic but a bad checksum still reports its page size.
func readMeta(f io.ReaderAt, off int64) (m metaPage, ok bool) {
	var b [pageHeaderSize + metaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return m, false
	}
	meta := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(meta[0:]) != boltMagic || le.Uint32(meta[4:]) != boltVersion {
		return m, false
	}
	m.pageSize = le.Uint32(meta[8:])
	m.pgid = le.Uint64(meta[40:])
	m.txid = le.Uint64(meta[48:])
	h := fnv.New64a()
	h.Write(meta[:56])
	return m, h.Sum64() == le.Uint64(meta[56:]) && m.pageSize >= 512
}
