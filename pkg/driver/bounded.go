package driver

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// runLocked runs op under the per-volume lock of key, in its own goroutine.
// The wait for the lock and op each get the operation timeout: a call that
// queued behind another operation still gives op its full time. NFS calls on
// a hard mount cannot be interrupted; when one blocks, the RPC still returns
// DeadlineExceeded on time, while op keeps the lock until it really ends, so
// a retry waits for it (and gets Aborted) instead of racing it.
//
// A panic in op is recovered in op's goroutine (the gRPC interceptor's
// recover cannot see it there, and an unrecovered panic ends the process with
// every other volume's operation): the lock is released and the call fails
// with Internal.
func runLocked[T any](d *Driver, ctx context.Context, key string, op func(ctx context.Context) (T, error)) (T, error) {
	return runLockedBy(d, ctx, key, func(ctx context.Context) (func(), error) { return d.locks.Lock(ctx, key) }, op)
}

// runLockedPair is runLocked under the locks of two keys (KeyedLocks.LockPair),
// for an operation that reads one volume or snapshot and writes another.
func runLockedPair[T any](d *Driver, ctx context.Context, a, b string, op func(ctx context.Context) (T, error)) (T, error) {
	return runLockedBy(d, ctx, a+" and "+b, func(ctx context.Context) (func(), error) { return d.locks.LockPair(ctx, a, b) }, op)
}

func runLockedBy[T any](d *Driver, ctx context.Context, key string, lock func(context.Context) (func(), error), op func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	lockCtx, cancelLock := context.WithTimeout(ctx, d.cfg.OperationTimeout)
	unlock, err := lock(lockCtx)
	cancelLock()
	if err != nil {
		return zero, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.OperationTimeout)
	defer cancel()
	done := make(chan opResult[T], 1)
	tracked := d.metrics.track(ctx)
	go func() {
		r := runRecovered(key, func() (T, error) { return op(ctx) })
		// Unlocked before the result is sent: when runLocked returns, a
		// retry can take the lock.
		unlock()
		tracked.finish()
		done <- r
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		tracked.abandon()
		return zero, status.Errorf(codes.DeadlineExceeded,
			"volume %s: the NFS operation did not finish within %v; the NFS server is probably slow or unreachable. It goes on in the background and a retry waits for it",
			key, time.Since(start).Round(time.Millisecond))
	}
}

// opResult is what op returned.
type opResult[T any] struct {
	v   T
	err error
}

// runRecovered calls op and turns a panic in it into an Internal status.
func runRecovered[T any](key string, op func() (T, error)) (r opResult[T]) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", p), "Volume operation panicked; its lock is released", "volumeID", key, "after", time.Since(start), "stack", string(debug.Stack()))
			r.err = status.Errorf(codes.Internal,
				"volume %s: internal error in the driver (a panic: %v); the operation was abandoned and a retry runs it again. Please report this with the driver's log", key, p)
		}
	}()
	r.v, r.err = op()
	return r
}
