package nfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ShareMounts keeps the controller's NFS share mounts: one per server, share
// and option set, shared by all calls, reference-counted, and unmounted after
// an idle period. Mounting costs a round trip to mountd and nfsd per call
// (about 0.4 s under UML); keeping the mount is what lets CreateVolume and
// DeleteVolume run at the speed of mkdir and rmdir.
type ShareMounts struct {
	mounter Mounter
	dir     string
	idle    time.Duration
	// configured replaces the volume's own options for the shares it lists.
	configured ShareOptions

	mu     sync.Mutex
	shares map[string]*shareEntry
	gen    uint64
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

type shareEntry struct {
	key     string
	path    string
	source  string
	options []string
	ready   chan struct{} // closed when the mount attempt has finished
	err     error         // the mount attempt's error, read after ready
	rootFd  int
	// flags holds the names of the has- markers (see nested.go) known to
	// exist in the records directory of recFd: they are never removed, so
	// once seen they need not be written again.
	flags sync.Map

	// Guarded by ShareMounts.mu.
	refs     int
	lastUsed time.Time
	stale    bool
	recFd    int
}

// Share is one caller's reference to a mounted share. Release it when done.
type Share struct {
	sm       *ShareMounts
	e        *shareEntry
	released bool
}

// NewShareMounts manages share mounts under dir, which it creates. Mounts
// left there by an earlier run are detached first: their handles may be stale
// and nothing refers to them any more.
func NewShareMounts(m Mounter, dir string, idle time.Duration) (*ShareMounts, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create share mount directory %s: %w", dir, err)
	}
	sm := &ShareMounts{mounter: m, dir: dir, idle: idle, shares: map[string]*shareEntry{}, stop: make(chan struct{}), done: make(chan struct{})}
	if mps, err := m.MountPoints(); err == nil {
		for _, mp := range mps {
			if filepath.Dir(mp.Path) == dir {
				klog.InfoS("Detaching share mount left by an earlier run", "path", mp.Path, "source", mp.Source)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = m.Unmount(ctx, mp.Path)
				cancel()
			}
		}
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			_ = unix.Rmdir(filepath.Join(dir, e.Name()))
		}
	}
	go sm.reapLoop()
	return sm, nil
}

// UseShareOptions makes the share mounts of the shares o lists use o's
// options instead of the volume's. Call it before the first Acquire.
func (sm *ShareMounts) UseShareOptions(o ShareOptions) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.configured = o
}

// ShareKey identifies a share mount.
func ShareKey(source string, options []string) string {
	opts := slices.Clone(options)
	slices.Sort(opts)
	return source + "\x00" + strings.Join(opts, ",")
}

// ControllerMountOptions are the options of the controller's own share mount:
// the volume's options plus nolock, because the controller never takes file
// locks and NFSv3 locking would need rpc.statd in the controller's pod.
func ControllerMountOptions(opts []string) []string {
	for _, o := range opts {
		if o == "lock" || o == "nolock" || strings.HasPrefix(o, "local_lock") {
			return opts
		}
	}
	return append(slices.Clone(opts), "nolock")
}

// Acquire returns the mounted share, mounting it if needed. ctx bounds the
// mount. options are the volume's; the controller's configured options for
// this share, when it has some (UseShareOptions), replace them.
func (sm *ShareMounts) Acquire(ctx context.Context, server, share string, options []string) (*Share, error) {
	source := server + ":" + share

	sm.mu.Lock()
	if configured, ok := sm.configured.For(server, share); ok {
		options = configured
	}
	options = ControllerMountOptions(options)
	key := ShareKey(source, options)
	e := sm.shares[key]
	if e == nil {
		sm.gen++
		sum := sha256.Sum256([]byte(key))
		e = &shareEntry{
			key: key, source: source, options: options, ready: make(chan struct{}), rootFd: -1, recFd: -1,
			path: filepath.Join(sm.dir, fmt.Sprintf("%s.%d", hex.EncodeToString(sum[:8]), sm.gen)),
		}
		sm.shares[key] = e
		e.refs++
		sm.mu.Unlock()
		e.err = sm.mount(ctx, e)
		close(e.ready)
		if e.err != nil {
			sm.mu.Lock()
			e.refs--
			if sm.shares[key] == e {
				delete(sm.shares, key)
			}
			sm.mu.Unlock()
			return nil, e.err
		}
		return &Share{sm: sm, e: e}, nil
	}
	e.refs++
	sm.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		sm.release(e)
		return nil, fmt.Errorf("waiting for the mount of %s: %w", source, ctx.Err())
	}
	if e.err != nil {
		sm.release(e)
		return nil, e.err
	}
	return &Share{sm: sm, e: e}, nil
}

func (sm *ShareMounts) mount(ctx context.Context, e *shareEntry) error {
	if err := os.MkdirAll(e.path, 0o750); err != nil {
		return fmt.Errorf("create mount point %s: %w", e.path, err)
	}
	if err := sm.mounter.Mount(ctx, e.source, e.path, e.options); err != nil {
		_ = unix.Rmdir(e.path)
		return err
	}
	// The mount point is the driver's own path, so following it is safe (and
	// lets the unit tests' FakeMounter mount with a symlink).
	fd, err := unix.Open(e.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		sm.unmount(e)
		return fmt.Errorf("open share %s mounted at %s: %w", e.source, e.path, err)
	}
	e.rootFd = fd
	klog.V(2).InfoS("Mounted share", "source", e.source, "path", e.path, "options", e.options)
	return nil
}

func (sm *ShareMounts) unmount(e *shareEntry) {
	if e.recFd >= 0 {
		unix.Close(e.recFd)
		e.recFd = -1
	}
	if e.rootFd >= 0 {
		unix.Close(e.rootFd)
		e.rootFd = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := sm.mounter.Unmount(ctx, e.path); err != nil {
		klog.ErrorS(err, "Unmounting share failed", "source", e.source, "path", e.path)
		return
	}
	_ = unix.Rmdir(e.path)
	klog.V(2).InfoS("Unmounted share", "source", e.source, "path", e.path)
}

func (sm *ShareMounts) release(e *shareEntry) {
	sm.mu.Lock()
	e.refs--
	e.lastUsed = time.Now()
	drop := e.stale && e.refs == 0
	sm.mu.Unlock()
	if drop {
		sm.unmount(e)
	}
}

// RootFd is an open directory fd of the share root; it stays valid until
// Release.
func (s *Share) RootFd() int { return s.e.rootFd }

// Path is where the share is mounted.
func (s *Share) Path() string { return s.e.path }

// Source is the mounted "server:share".
func (s *Share) Source() string { return s.e.source }

// RecordDirFd opens, once per mount, the records directory of the share.
func (s *Share) RecordDirFd() (int, error) {
	s.sm.mu.Lock()
	fd := s.e.recFd
	s.sm.mu.Unlock()
	if fd >= 0 {
		return fd, nil
	}
	fd, err := OpenRecordDir(s.e.rootFd)
	if err != nil {
		return -1, fmt.Errorf("open records directory %s on %s: %w", RecordDir, s.e.source, err)
	}
	s.sm.mu.Lock()
	defer s.sm.mu.Unlock()
	if s.e.recFd >= 0 {
		unix.Close(fd)
		return s.e.recFd, nil
	}
	s.e.recFd = fd
	return fd, nil
}

// MarkStale retires the mount after a stale file handle: the next Acquire
// mounts afresh, and this one is unmounted when its last user releases it.
func (s *Share) MarkStale() {
	s.sm.mu.Lock()
	defer s.sm.mu.Unlock()
	if !s.e.stale {
		klog.InfoS("Share mount is stale; it will be replaced", "source", s.e.source, "path", s.e.path)
	}
	s.e.stale = true
	if s.sm.shares[s.e.key] == s.e {
		delete(s.sm.shares, s.e.key)
	}
}

// Release gives the reference back. Calling it twice is harmless.
func (s *Share) Release() {
	if s.released {
		return
	}
	s.released = true
	s.sm.release(s.e)
}

func (sm *ShareMounts) reapLoop() {
	defer close(sm.done)
	interval := sm.idle / 4
	if interval < time.Second {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-sm.stop:
			return
		case <-t.C:
			sm.reap(time.Now())
		}
	}
}

// reap unmounts the shares nobody has used for the idle period.
func (sm *ShareMounts) reap(now time.Time) {
	var idle []*shareEntry
	sm.mu.Lock()
	for key, e := range sm.shares {
		select {
		case <-e.ready:
		default:
			continue
		}
		if e.refs == 0 && now.Sub(e.lastUsed) >= sm.idle {
			delete(sm.shares, key)
			idle = append(idle, e)
		}
	}
	sm.mu.Unlock()
	for _, e := range idle {
		sm.unmount(e)
	}
}

// Mounted reports how many shares are mounted; for tests and metrics.
func (sm *ShareMounts) Mounted() int {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return len(sm.shares)
}

// Close stops the reaper and unmounts every share nobody holds.
func (sm *ShareMounts) Close() {
	sm.closed.Do(func() {
		close(sm.stop)
		<-sm.done
		sm.reap(time.Now().Add(sm.idle + time.Hour))
	})
}
