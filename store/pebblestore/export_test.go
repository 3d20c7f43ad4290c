package pebblestore

import "github.com/cockroachdb/pebble/v2/vfs"

// WithFS returns cfg with the filesystem the Log uses: tests inject faults
// through it.
func WithFS(cfg Config, fs vfs.FS) Config {
	cfg.fs = fs
	return cfg
}
