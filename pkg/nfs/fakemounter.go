package nfs

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
)

// FakeMounter is a Mounter for unit tests. It "exports" local directories:
// mounting server:/share/sub replaces the (empty) target directory with a
// symlink to the exported directory's sub, which is enough for code that
// opens the mount point and works beneath it. Nothing here needs privileges.
type FakeMounter struct {
	mu sync.Mutex
	// Exports maps "server:/share" to the local directory it serves.
	Exports map[string]string
	// FailWith, when set, makes Mount fail with this mount(8) output.
	FailWith string
	// UnmountErr, when set, makes Unmount fail with it and leave the mount,
	// as SystemMounter does with a *MountBusyError.
	UnmountErr error
	mounts     []MountPoint
	// MountCalls and UnmountCalls count calls, for tests of the share cache.
	MountCalls, UnmountCalls int
}

// NewFakeMounter returns a FakeMounter with the given exports.
func NewFakeMounter(exports map[string]string) *FakeMounter {
	return &FakeMounter{Exports: exports}
}

func (f *FakeMounter) resolve(source string) (string, bool) {
	server, p, ok := strings.Cut(source, ":")
	if !ok {
		return "", false
	}
	for exp, dir := range f.Exports {
		es, ep, _ := strings.Cut(exp, ":")
		if es != server {
			continue
		}
		if p == ep || ep == "/" || strings.HasPrefix(p, ep+"/") {
			return path.Join(dir, strings.TrimPrefix(p, ep)), true
		}
	}
	return "", false
}

// Mount implements Mounter.
func (f *FakeMounter) Mount(ctx context.Context, source, target string, options []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.MountCalls++
	if err := ctx.Err(); err != nil {
		return &MountError{Source: source, Target: target, Err: err}
	}
	if f.FailWith != "" {
		return &MountError{Source: source, Target: target, Output: f.FailWith, Err: fmt.Errorf("exit status 32")}
	}
	dir, ok := f.resolve(source)
	if !ok {
		return &MountError{Source: source, Target: target, Output: "mount.nfs: access denied by server while mounting " + source, Err: fmt.Errorf("exit status 32")}
	}
	if _, err := os.Stat(dir); err != nil {
		return &MountError{Source: source, Target: target, Output: "mount.nfs: mounting " + source + " failed, reason given by server: No such file or directory", Err: fmt.Errorf("exit status 32")}
	}
	if err := os.Remove(target); err != nil {
		return &MountError{Source: source, Target: target, Output: err.Error(), Err: err}
	}
	if err := os.Symlink(dir, target); err != nil {
		return &MountError{Source: source, Target: target, Output: err.Error(), Err: err}
	}
	f.mounts = append(f.mounts, MountPoint{Path: target, Source: source, FSType: "nfs", Options: options})
	return nil
}

// Unmount implements Mounter.
func (f *FakeMounter) Unmount(_ context.Context, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.UnmountCalls++
	if f.UnmountErr != nil {
		return f.UnmountErr
	}
	for i := len(f.mounts) - 1; i >= 0; i-- {
		if f.mounts[i].Path == target {
			f.mounts = append(f.mounts[:i], f.mounts[i+1:]...)
			if err := os.Remove(target); err != nil {
				return err
			}
			return os.Mkdir(target, 0o750)
		}
	}
	return nil
}

// MountPoints implements Mounter.
func (f *FakeMounter) MountPoints() ([]MountPoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]MountPoint(nil), f.mounts...), nil
}
