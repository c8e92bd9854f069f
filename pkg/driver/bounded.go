package driver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runLocked runs op under the per-volume lock of key, in its own goroutine,
// and waits for it no longer than the operation timeout. NFS calls on a hard
// mount cannot be interrupted; when one blocks, the RPC still returns
// DeadlineExceeded on time, while op keeps the lock until it really ends, so
// a retry waits for it (and gets Aborted) instead of racing it.
func runLocked[T any](d *Driver, ctx context.Context, key string, op func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	ctx, cancel := context.WithTimeout(ctx, d.cfg.OperationTimeout)
	defer cancel()
	unlock, err := d.locks.Lock(ctx, key)
	if err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer unlock()
		v, err := op(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, status.Errorf(codes.DeadlineExceeded,
			"volume %s: the NFS operation did not finish within %v; the NFS server is probably slow or unreachable. It goes on in the background and a retry waits for it",
			key, d.cfg.OperationTimeout)
	}
}
