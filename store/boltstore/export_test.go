package boltstore

import "os"

// WithOpenFile returns cfg with the function that opens the file: tests
// inject faults through the file it returns.
func WithOpenFile(cfg Config, fn func(string, int, os.FileMode) (*os.File, error)) Config {
	cfg.openFile = fn
	return cfg
}
