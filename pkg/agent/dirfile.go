package agent

import "os"

// newDirFile wraps a directory fd for Readdirnames; the File owns the fd.
func newDirFile(fd int) *os.File { return os.NewFile(uintptr(fd), "dir") }
