package agent

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// FakeQuotas is a Quotas for unit tests, on any local file system: project
// IDs per inode and limits per ID in memory. It records the paths of the
// directories whose project it changed.
type FakeQuotas struct {
	mu       sync.Mutex
	Projects map[uint64]uint32
	Inherit  map[uint64]bool
	Limits   map[uint32]int64
	// Usage is what Get reports as charged to an ID, besides its limit.
	Usage   map[uint32]Quota
	Changed []string
}

// NewFakeQuotas returns an empty FakeQuotas.
func NewFakeQuotas() *FakeQuotas {
	return &FakeQuotas{Projects: map[uint64]uint32{}, Inherit: map[uint64]bool{}, Limits: map[uint32]int64{}, Usage: map[uint32]Quota{}}
}

func fdIno(fd int) (uint64, error) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	return st.Ino, err
}

// Project implements Quotas.
func (f *FakeQuotas) Project(fd int) (uint32, bool, error) {
	ino, err := fdIno(fd)
	if err != nil {
		return 0, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Projects[ino], f.Inherit[ino], nil
}

// SetProject implements Quotas.
func (f *FakeQuotas) SetProject(fd int, id uint32, inherit bool) error {
	ino, err := fdIno(fd)
	if err != nil {
		return err
	}
	p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Projects[ino], f.Inherit[ino] = id, inherit
	f.Changed = append(f.Changed, p)
	return nil
}

// Get implements Quotas.
func (f *FakeQuotas) Get(_ int, id uint32) (Quota, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.Usage[id]
	q.LimitBytes = f.Limits[id]
	return q, nil
}

// SetLimit implements Quotas.
func (f *FakeQuotas) SetLimit(_ int, id uint32, bytes int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if bytes == 0 {
		delete(f.Limits, id)
	} else {
		f.Limits[id] = bytes
	}
	return nil
}

// ProjectOf returns the project of the directory at path.
func (f *FakeQuotas) ProjectOf(path string) uint32 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Projects[st.Ino]
}

// State renders everything, for before/after comparisons.
func (f *FakeQuotas) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.Projects, f.Inherit, f.Limits)
}
