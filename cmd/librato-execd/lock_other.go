//go:build !unix

package main

// lockDir: no lock outside Unix (documented: one librato-execd per spool
// directory).
func lockDir(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}

// syncDir: directories cannot be opened for syncing on Windows; NTFS
// journals the rename itself.
func syncDir(string) error { return nil }
