package nfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
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
	// leaves no helper process behind; when it fails, nothing new is mounted
	// at target.
	Mount(ctx context.Context, source, target string, options []string) error
	// Unmount unmounts target within a bounded time, escalating to a forced
	// and then a lazy unmount only when the server does not answer. A busy
	// mount whose server answers stays mounted: the error is a *MountBusyError.
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

	// umount is umount(2) and probe the bounded statfs that tells whether
	// the server answers; tests replace them.
	umount func(target string, flags int) error
	probe  *StatFS
}

// serverProbe is the statfs runner of every SystemMounter: a statfs blocked
// on a dead server is remembered across calls, so a retried unpublish does
// not pile up another blocked goroutine but learns at once that the server
// still does not answer.
var serverProbe = NewStatFS()

func (s *SystemMounter) unmountCall() func(string, int) error {
	if s.umount != nil {
		return s.umount
	}
	return unix.Unmount
}

func (s *SystemMounter) serverProbe() *StatFS {
	if s.probe != nil {
		return s.probe
	}
	return serverProbe
}

// Mount runs "mount -t nfs -o OPTIONS SOURCE TARGET" in its own process group,
// and kills the whole group when ctx ends, so a mount.nfs that retries a dead
// server does not outlive the call. A mount that succeeded is reported as
// such even when ctx ended just after; a helper killed on ctx's end may have
// mounted before it died, and that mount is undone, so that a failed Mount
// leaves nothing behind. The callers mount only where source is not mounted
// (NodePublishVolume has just read the mount table; a share mount has a
// fresh directory), so a mount of source on top of target after the kill is
// the helper's: the mount table is not read again before every mount.
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
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		s.undoKilledMount(source, target)
		return &MountError{Source: source, Target: target, Output: strings.TrimSpace(out.String()), Err: ctxErr}
	}
	return &MountError{Source: source, Target: target, Output: strings.TrimSpace(out.String()), Err: err}
}

// undoKilledMount unmounts what a killed mount helper mounted at target
// before it died: a mount of source on top of target.
func (s *SystemMounter) undoKilledMount(source, target string) {
	mps, err := s.MountPoints()
	if err != nil {
		klog.ErrorS(err, "Cannot check whether a killed mount helper left a mount", "source", source, "target", target)
		return
	}
	if top, ok := LookupMount(mps, target); !ok || top.Source != source {
		return
	}
	klog.InfoS("The mount helper was killed after it mounted; unmounting", "source", source, "target", target)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Unmount(ctx, target); err != nil {
		klog.ErrorS(err, "Unmounting what a killed mount helper mounted failed", "source", source, "target", target)
	}
}

// MountBusyError is a mount that could not be unmounted because it is in
// use (a process has a file open or its working directory in it) while its
// NFS server answers. It is left mounted.
type MountBusyError struct {
	Target string
}

func (e *MountBusyError) Error() string {
	return fmt.Sprintf("%s is busy: a process still has a file or its working directory open in it", e.Target)
}

// Unwrap makes errors.Is(err, unix.EBUSY) hold.
func (e *MountBusyError) Unwrap() error { return unix.EBUSY }

// Unmount tries a plain umount. It escalates, to MNT_FORCE (which aborts the
// NFS client's outstanding requests) and then to MNT_DETACH (which always
// returns at once), only when the server does not answer: the plain umount
// did not return within its share of ctx's time, or it answered EBUSY and a
// bounded statfs of target got no answer either. A busy mount whose server
// answers stays mounted and Unmount returns a *MountBusyError: MNT_FORCE
// would fail every pending request on the NFS superblock, which all mounts of
// the export on this host share (other pods would get EIO), and MNT_DETACH
// would let the process that holds the mount go on writing into a volume
// reported unpublished. A step that blocks in the kernel is abandoned to a
// goroutine, which is the price of never hanging the caller.
func (s *SystemMounter) Unmount(ctx context.Context, target string) error {
	step := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) / 3; left < step {
			step = left
		}
	}
	umount := s.unmountCall()
	var cause error
	switch err := umountWithin(umount, target, 0, step); {
	case unmounted(err):
		return nil
	case err == unix.EBUSY:
		pctx, cancel := context.WithTimeout(context.Background(), step)
		_, perr := s.serverProbe().Usage(pctx, target)
		cancel()
		if perr == nil || IsStale(perr) {
			// The server answered (a stale handle is an answer too).
			return &MountBusyError{Target: target}
		}
		cause = fmt.Errorf("busy, and the NFS server did not answer a statfs within %v: %w", step, perr)
	case err == errUmountTimeout:
		cause = fmt.Errorf("umount did not return within %v: the NFS server does not answer", step)
	default:
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	klog.InfoS("NFS server does not answer; forcing the unmount", "target", target, "cause", cause)
	err := umountWithin(umount, target, unix.MNT_FORCE, step)
	if unmounted(err) {
		klog.InfoS("Forced the unmount of an unresponsive NFS mount", "target", target, "cause", cause)
		return nil
	}
	if err := umount(target, unix.MNT_DETACH); err != nil && !unmounted(err) {
		return fmt.Errorf("lazy unmount of %s failed after %v: %w", target, cause, err)
	}
	klog.InfoS("Detached an unresponsive NFS mount lazily", "target", target, "cause", cause)
	return nil
}

// unmounted tells whether an umount(2) result means target is no longer
// mounted: EINVAL is "not a mount point (any more)", ENOENT "no such path".
func unmounted(err error) bool {
	return err == nil || err == unix.EINVAL || err == unix.ENOENT
}

var errUmountTimeout = errors.New("umount timed out")

func umountWithin(umount func(string, int) error, target string, flags int, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- umount(target, flags) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return errUmountTimeout
	}
}

// MountPoints parses the mount table; it reads only /proc. The parser is
// github.com/moby/sys/mountinfo's, which undoes the kernel's octal escapes
// (a space in a path is "\040" in mountinfo, a backslash "\134"): mount-utils'
// ParseMountInfo keeps them, and a target or subDir with a space then never
// matched its own mount.
func (s *SystemMounter) MountPoints() ([]MountPoint, error) {
	p := s.MountInfoPath
	if p == "" {
		p = "/proc/self/mountinfo"
	}
	content, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read mount table %s: %w", p, err)
	}
	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(content), nil)
	if err != nil {
		return nil, fmt.Errorf("read mount table %s: %w", p, err)
	}
	mps := make([]MountPoint, 0, len(infos))
	for _, mi := range infos {
		mps = append(mps, MountPoint{Path: mi.Mountpoint, Source: mi.Source, FSType: mi.FSType, Options: strings.Split(mi.Options, ",")})
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
