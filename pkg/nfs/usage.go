package nfs

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DirUsage is what a walk of one volume's directory counted: the bytes its
// files occupy (allocated blocks, as du counts them, each hard-linked file
// once) and its entries.
type DirUsage struct {
	Bytes, Inodes int64
	// At is when the walk ended.
	At time.Time
	// Partial is set when the walk stopped at MaxEntries or at an error:
	// the figures are a lower bound.
	Partial bool
}

// UsageWalker counts the usage of volume directories that have no quota,
// in the background: Get answers at once from the last walk and starts a
// new one when that is older than Interval. At most Concurrency walks run
// at once on the node, each of at most MaxEntries entries, so hundreds of
// volumes cost a bounded, steady trickle of READDIRPLUS calls, never a
// burst, and NodeGetVolumeStats never waits for one.
type UsageWalker struct {
	Interval    time.Duration
	MaxEntries  int64
	Concurrency int

	once    sync.Once
	slots   chan struct{}
	mu      sync.Mutex
	entries map[string]*walkEntry
	// walk is walkDir; tests replace it.
	walk func(path string, max int64, stop func() bool) DirUsage
}

type walkEntry struct {
	last    DirUsage
	have    bool
	running bool
	gen     int // bumped by Forget, so a walk that ends after it is dropped
	// stopped is set by Stop: no walk starts again until Forget.
	stopped bool
	// cancel asks the running walk to stop; done is closed when it has.
	cancel atomic.Bool
	done   chan struct{}
}

// Default walk settings: a volume is counted again every 5 minutes, two at
// a time, up to a million entries each.
const (
	DefaultWalkInterval    = 5 * time.Minute
	DefaultWalkMaxEntries  = 1_000_000
	DefaultWalkConcurrency = 2
)

// NewUsageWalker returns a walker with the defaults.
func NewUsageWalker() *UsageWalker {
	return &UsageWalker{Interval: DefaultWalkInterval, MaxEntries: DefaultWalkMaxEntries, Concurrency: DefaultWalkConcurrency}
}

func (w *UsageWalker) init() {
	w.once.Do(func() {
		if w.Concurrency < 1 {
			w.Concurrency = 1
		}
		w.slots = make(chan struct{}, w.Concurrency)
		w.entries = map[string]*walkEntry{}
		if w.walk == nil {
			w.walk = walkDir
		}
	})
}

// Get returns the last count of the directory mounted at path, and ok=false
// when there is none yet. It starts a walk when there is none or it is
// older than Interval, and never waits for it.
func (w *UsageWalker) Get(path string, now time.Time) (DirUsage, bool) {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.entries[path]
	if e == nil {
		e = &walkEntry{}
		w.entries[path] = e
	}
	if !e.running && !e.stopped && (!e.have || now.Sub(e.last.At) >= w.Interval) {
		e.running = true
		e.cancel.Store(false)
		e.done = make(chan struct{})
		go w.run(path, e, e.gen, e.done)
	}
	return e.last, e.have
}

func (w *UsageWalker) run(path string, e *walkEntry, gen int, done chan struct{}) {
	defer close(done)
	w.slots <- struct{}{}
	var u DirUsage
	if !e.cancel.Load() {
		u = w.walk(path, w.MaxEntries, e.cancel.Load)
	}
	<-w.slots
	w.mu.Lock()
	defer w.mu.Unlock()
	e.running = false
	if e.gen == gen && w.entries[path] == e && !e.cancel.Load() {
		e.last, e.have = u, true
	}
}

// Stop ends the walk of path, if one runs, and starts none again until
// Forget. NodeUnpublishVolume calls it before the unmount: a walk holds
// directories of the mount open, and the unmount would find the mount busy.
// It waits for the walk to end, up to wait; a walk stuck on a server that
// does not answer is left behind (the unmount then escalates as for any
// dead server).
func (w *UsageWalker) Stop(path string, wait time.Duration) {
	w.init()
	w.mu.Lock()
	e := w.entries[path]
	if e == nil {
		e = &walkEntry{}
		w.entries[path] = e
	}
	e.stopped = true
	e.cancel.Store(true)
	done := e.done
	running := e.running
	w.mu.Unlock()
	if !running || done == nil {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Forget drops what is known about path (its volume was unpublished, or is
// published afresh), and lifts a Stop.
func (w *UsageWalker) Forget(path string) {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.entries[path]; e != nil {
		e.gen++
		delete(w.entries, path)
	}
}

// walkDir counts the tree below path without following symlinks and
// without crossing into other file systems.
func walkDir(path string, max int64, stop func() bool) DirUsage {
	var u DirUsage
	var root unix.Stat_t
	if err := unix.Lstat(path, &root); err != nil {
		return DirUsage{At: time.Now(), Partial: true}
	}
	seen := map[[2]uint64]bool{}
	var visit func(dir string) bool
	visit = func(dir string) bool {
		if stop() {
			u.Partial = true
			return false
		}
		f, err := os.Open(dir)
		if err != nil {
			u.Partial = true
			return true
		}
		defer f.Close()
		for {
			names, err := f.Readdirnames(512)
			for _, n := range names {
				if u.Inodes >= max || stop() {
					u.Partial = true
					return false
				}
				p := dir + "/" + n
				var st unix.Stat_t
				if unix.Lstat(p, &st) != nil {
					u.Partial = true
					continue
				}
				if st.Dev != root.Dev {
					continue
				}
				u.Inodes++
				if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
					k := [2]uint64{st.Dev, st.Ino}
					if seen[k] {
						continue
					}
					seen[k] = true
				}
				u.Bytes += st.Blocks * 512
				if st.Mode&unix.S_IFMT == unix.S_IFDIR && !visit(p) {
					return false
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					u.Partial = true
				}
				return true
			}
		}
	}
	visit(path)
	u.At = time.Now()
	return u
}
