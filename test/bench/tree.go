package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// filesPerDir is how many files the generated trees put in one directory,
// as an application's data directory would rather than one flat directory.
const filesPerDir = 1000

// treePath is the i-th file of a generated tree below dir.
func treePath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("d%03d", i/filesPerDir), fmt.Sprintf("f%06d", i))
}

// writeRandomTree fills dir with files regular files holding size bytes in
// all, of pseudo-random data from seed: incompressible, so that gzip (the
// tarball floor) gains nothing, and the same tree every run. The bytes are
// spread evenly; the first files take the remainder.
func writeRandomTree(dir string, files int, size int64, seed uint64) error {
	if files <= 0 || size < 0 {
		return fmt.Errorf("a tree of %d files and %d bytes", files, size)
	}
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	each, rest := size/int64(files), size%int64(files)
	buf := make([]byte, each+1)
	for i := range files {
		n := each
		if int64(i) < rest {
			n++
		}
		_, _ = src.Read(buf[:n])
		if err := writeTreeFile(dir, i, buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

// writeEmptyTree creates files empty regular files below dir: a tree whose
// cost to walk is its entries, not its bytes (an empty file takes no data
// block on XFS or tmpfs, so 100,000 of them fit in guest memory).
func writeEmptyTree(dir string, files int) error {
	for i := range files {
		if err := writeTreeFile(dir, i, nil); err != nil {
			return err
		}
	}
	return nil
}

func writeTreeFile(dir string, i int, data []byte) error {
	p := treePath(dir, i)
	if i%filesPerDir == 0 {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(p, data, 0o644)
}
