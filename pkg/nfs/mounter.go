package nfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/mount-utils"
)

// MountPoint is one line of the mount table that matters to the driver.
type MountPoint struct {
	Path    string
	Source  string
	FSType  string
	Options []string // per-mount options, such as "ro"
}

// ReadOnly reports whether the mount is read-only.
func (m MountPoint) ReadOnly() bool {
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Mounter mounts and unmounts NFS. The real one runs mount(8) and umount(2);
// unit tests use a fake.
type Mounter interface {
	// Mount mounts an NFS source at target. It returns when ctx ends, and
	// leaves no helper process behind.
	Mount(ctx context.Context, source, target string, options []string) error
	// Unmount unmounts target within a bounded time, escalating to a forced
	// and then a lazy unmount when the server does not answer.
	Unmount(ctx context.Context, target string) error
	// MountPoints lists the mount table without touching any mounted file
	// system, so it never blocks on a dead server.
	MountPoints() ([]MountPoint, error)
}

// FindMount returns the mount at path, if any, from the live mount table.
func FindMount(m Mounter, path string) (MountPoint, bool, error) {
	mps, err := m.MountPoints()
	if err != nil {
		return MountPoint{}, false, err
	}
	mp, ok := LookupMount(mps, path)
	return mp, ok, nil
}

// LookupMount finds the mount at path in a mount table. When mounts are
// stacked the topmost wins, which is the one path resolves to.
func LookupMount(mps []MountPoint, path string) (MountPoint, bool) {
	var found MountPoint
	ok := false
	for _, mp := range mps {
		if mp.Path == path {
			found, ok = mp, true
		}
	}
	return found, ok
}

// SystemMounter is the Mounter that acts on the host.
type SystemMounter struct {
	// MountInfoPath is the mount table to read; /proc/self/mountinfo by default.
	MountInfoPath string
}

// Mount runs "mount -t nfs -o OPTIONS SOURCE TARGET" in its own process group,
// and kills the whole group when ctx ends, so a mount.nfs that retries a dead
// server does not outlive the call.
func (s *SystemMounter) Mount(ctx context.Context, source, target string, options []string) error {
	args := []string{"-t", "nfs"}
	if len(options) > 0 {
		args = append(args, "-o", strings.Join(options, ","))
	}
	args = append(args, source, target)
	cmd := exec.CommandContext(ctx, "mount", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	klog.V(4).InfoS("Mounting", "source", source, "target", target, "options", options)
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &MountError{Source: source, Target: target, Output: strings.TrimSpace(out.String()), Err: ctxErr}
	}
	if err != nil {
		return &MountError{Source: source, Target: target, Output: strings.TrimSpace(out.String()), Err: err}
	}
	return nil
}

// Unmount tries a plain umount, then MNT_FORCE, which aborts the NFS client's
// outstanding requests, and finally MNT_DETACH, which always returns at once.
// Each step gets a share of ctx's time; a step that blocks in the kernel is
// abandoned to a goroutine, which is the price of never hanging the caller.
func (s *SystemMounter) Unmount(ctx context.Context, target string) error {
	step := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) / 3; left < step {
			step = left
		}
	}
	var lastErr error
	for _, flags := range []int{0, unix.MNT_FORCE} {
		err := umountWithin(target, flags, step)
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			// EINVAL: not a mount point (any more).
			return nil
		}
		klog.V(2).InfoS("Unmount did not complete, escalating", "target", target, "flags", flags, "err", err)
		lastErr = err
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("lazy unmount of %s failed after %v: %w", target, lastErr, err)
	}
	klog.InfoS("Detached an unresponsive NFS mount lazily", "target", target, "cause", lastErr)
	return nil
}

var errUmountTimeout = errors.New("umount timed out")

func umountWithin(target string, flags int, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- unix.Unmount(target, flags) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return errUmountTimeout
	}
}

// MountPoints parses the mount table with mount-utils; it reads only /proc.
func (s *SystemMounter) MountPoints() ([]MountPoint, error) {
	p := s.MountInfoPath
	if p == "" {
		p = "/proc/self/mountinfo"
	}
	infos, err := mount.ParseMountInfo(p)
	if err != nil {
		return nil, fmt.Errorf("read mount table %s: %w", p, err)
	}
	mps := make([]MountPoint, 0, len(infos))
	for _, mi := range infos {
		mps = append(mps, MountPoint{Path: mi.MountPoint, Source: mi.Source, FSType: mi.FsType, Options: mi.MountOptions})
	}
	return mps, nil
}

// IsStale reports whether err, however wrapped, is a stale NFS file handle:
// the server restarted with a new fsid, or the directory was removed or
// recreated there. A remount repairs it. Other errors (EACCES from a
// root-squashed share, EIO from a soft timeout) are not cured by remounting.
func IsStale(err error) bool {
	return errors.Is(err, unix.ESTALE)
}
