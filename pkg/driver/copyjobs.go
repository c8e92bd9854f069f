package driver

import (
	"context"
	"sync"
	"time"

	"github.com/example/nfs-csi/pkg/nfs"
)

// copyJobs are the copies (snapshots, restores, clones) running in this
// process. A copy can outlast the call that started it: it runs in the
// background, holding no volume lock, and the next call for the same
// snapshot or volume waits for it again instead of starting another. A copy
// that ended is forgotten; what it achieved is in its record on the share.
type copyJobs struct {
	mu   sync.Mutex
	jobs map[string]*copyJob
	// beforeCopy, when set, runs at the start of every copy; unit tests
	// hold copies with it.
	beforeCopy func(target string)
}

// copyJob is one copy into target from source (snapshot or volume IDs).
type copyJob struct {
	target, source string
	cancel         context.CancelFunc
	done           chan struct{}
	err            error // read after done
}

func newCopyJobs() *copyJobs { return &copyJobs{jobs: map[string]*copyJob{}} }

// start runs copy for target in the background unless a copy for target is
// running already; it returns the running job either way.
func (c *copyJobs) start(target, source string, copy func(ctx context.Context) error) *copyJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[target]; j != nil {
		return j
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &copyJob{target: target, source: source, cancel: cancel, done: make(chan struct{})}
	c.jobs[target] = j
	go func() {
		defer cancel()
		r := runRecovered(target, func() (struct{}, error) {
			if c.beforeCopy != nil {
				c.beforeCopy(target)
			}
			return struct{}{}, copy(ctx)
		})
		c.mu.Lock()
		delete(c.jobs, target)
		c.mu.Unlock()
		j.err = r.err
		close(j.done)
	}()
	return j
}

// stopAll cancels every running copy and waits up to d for them to end.
func (c *copyJobs) stopAll(d time.Duration) {
	c.mu.Lock()
	jobs := make([]*copyJob, 0, len(c.jobs))
	for _, j := range c.jobs {
		j.cancel()
		jobs = append(jobs, j)
	}
	c.mu.Unlock()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-deadline.C:
			return
		}
	}
}

// running returns the copy into target, or nil.
func (c *copyJobs) running(target string) *copyJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[target]
}

// readingFrom returns a running copy whose source is source, or nil.
func (c *copyJobs) readingFrom(source string) *copyJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range c.jobs {
		if j.source == source {
			return j
		}
	}
	return nil
}

// wait waits for j until it ends (true, with its error) or for at most d.
func (j *copyJob) wait(ctx context.Context, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-j.done:
		return true, j.err
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, nil
	}
}

// copyWait is how long a call waits for its copy before it answers "not
// ready yet": most of the time the call has, leaving room to answer, and
// never more than the operation timeout allows the locked work.
func (d *Driver) copyWait(ctx context.Context) time.Duration {
	w := d.cfg.OperationTimeout * 2 / 3
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) * 2 / 3; left < w {
			w = left
		}
	}
	return max(w, 0)
}

// knownShares are the shares this process took or restored snapshots on:
// where ListSnapshots without a filter looks. The controller has no list
// of shares; a share it was not asked about since it started is not listed
// (a filter by snapshot or source volume ID always finds it).
type knownShares struct {
	mu     sync.Mutex
	shares map[string]nfs.Volume
}

func (k *knownShares) add(v nfs.Volume) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.shares == nil {
		k.shares = map[string]nfs.Volume{}
	}
	key := v.ShareSource()
	if _, ok := k.shares[key]; !ok {
		k.shares[key] = nfs.Volume{Server: v.Server, Share: v.Share, MountOptions: v.MountOptions, OnDelete: nfs.OnDeleteRetain}
	}
}

func (k *knownShares) list() []nfs.Volume {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]nfs.Volume, 0, len(k.shares))
	for _, v := range k.shares {
		out = append(out, v)
	}
	return out
}
