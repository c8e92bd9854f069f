package driver

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// holdersAndWaiters is the number of holders and waiters of key.
func (k *KeyedLocks) holdersAndWaiters(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.locks[key]; l != nil {
		return l.waiters
	}
	return 0
}

func TestKeyedLocksSerialiseOneKey(t *testing.T) {
	k := NewKeyedLocks()
	const goroutines, rounds = 20, 50
	var mu sync.Mutex
	inside, maxInside, total := 0, 0, 0
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				unlock, err := k.Lock(context.Background(), "vol")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				inside--
				total++
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	if maxInside != 1 {
		t.Errorf("%d holders at once, want 1", maxInside)
	}
	if total != goroutines*rounds {
		t.Errorf("%d critical sections ran, want %d", total, goroutines*rounds)
	}
	if n := k.Len(); n != 0 {
		t.Errorf("Len() = %d after every unlock, want 0", n)
	}
}

func TestKeyedLocksWaiterBlocksUntilUnlock(t *testing.T) {
	k := NewKeyedLocks()
	unlock, err := k.Lock(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		u, err := k.Lock(context.Background(), "vol")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	for k.holdersAndWaiters("vol") < 2 {
		runtime.Gosched()
	}
	select {
	case <-got:
		t.Fatal("a second Lock of a held key succeeded")
	default:
	}
	unlock()
	(<-got)()
	if n := k.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
}

func TestKeyedLocksIndependentKeys(t *testing.T) {
	k := NewKeyedLocks()
	unlockA, err := k.Lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// With "a" held, "b" is free: this would block forever otherwise.
	unlockB, err := k.Lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if n := k.Len(); n != 2 {
		t.Errorf("Len() = %d with two keys held, want 2", n)
	}
	unlockA()
	unlockB()
	if n := k.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
}

func TestKeyedLocksCancel(t *testing.T) {
	k := NewKeyedLocks()
	unlock, err := k.Lock(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}

	// Cancelled before the call.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if u, err := k.Lock(ctx, "vol"); err == nil {
		u()
		t.Fatal("Lock of a held key with a cancelled context succeeded")
	} else {
		wantCode(t, err, codes.Aborted)
		wantMessageContains(t, err, "vol")
	}

	// Cancelled while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := k.Lock(ctx, "vol")
		errc <- err
	}()
	for k.holdersAndWaiters("vol") < 2 {
		runtime.Gosched()
	}
	cancel()
	wantCode(t, <-errc, codes.Aborted)

	if n := k.holdersAndWaiters("vol"); n != 1 {
		t.Errorf("%d holders and waiters after the cancelled waiters left, want 1", n)
	}
	unlock()
	if n := k.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
	// The key is usable again.
	u, err := k.Lock(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	u()
	if n := k.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
}

func TestRunLocked(t *testing.T) {
	e := newEnv(t)
	v, err := runLocked(e.d, context.Background(), "vol", func(context.Context) (int, error) { return 42, nil })
	if err != nil || v != 42 {
		t.Errorf("runLocked = %d, %v; want 42, nil", v, err)
	}
	if n := e.d.locks.Len(); n != 0 {
		t.Errorf("lock still held: Len() = %d", n)
	}

	// A held lock and an ended context: Aborted, and op never runs.
	unlock, err := e.d.locks.Lock(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err = runLocked(e.d, ctx, "vol", func(context.Context) (int, error) { ran = true; return 0, nil })
	wantCode(t, err, codes.Aborted)
	if ran {
		t.Error("op ran without the lock")
	}
	unlock()
}

// A panic in a volume operation used to happen in runLocked's goroutine, out
// of reach of the interceptor's recover: it ended the whole plugin.
func TestRegressionRunLockedPanic(t *testing.T) {
	e := newEnv(t)
	_, err := runLocked(e.d, context.Background(), "vol-panic", func(context.Context) (int, error) {
		var vols []string
		return len(vols[3]), nil // an index out of range, as a real bug would panic
	})
	wantCode(t, err, codes.Internal)
	if err != nil && !strings.Contains(err.Error(), "vol-panic") {
		t.Errorf("error %q does not name the volume", err)
	}
	if n := e.d.locks.Len(); n != 0 {
		t.Errorf("lock still held after the panic: Len() = %d", n)
	}
	// The volume's lock can be taken again at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := e.d.locks.Lock(ctx, "vol-panic")
	if err != nil {
		t.Fatalf("lock after the panic: %v", err)
	}
	unlock()
}

// The wait for the lock and the operation used to share one timeout: an
// operation queued behind another got only what the wait had left over.
func TestRegressionRunLockedOwnBudget(t *testing.T) {
	e := newEnv(t)
	timeout := e.d.cfg.OperationTimeout
	unlock, err := e.d.locks.Lock(context.Background(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	deadline := make(chan time.Time, 1)
	go func() {
		_, err := runLocked(e.d, context.Background(), "vol", func(ctx context.Context) (int, error) {
			dl, _ := ctx.Deadline()
			deadline <- dl
			return 0, nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	for e.d.locks.holdersAndWaiters("vol") < 2 {
		runtime.Gosched()
	}
	released := time.Now()
	unlock()
	if dl := <-deadline; dl.Before(released.Add(timeout)) {
		t.Errorf("the operation's deadline is %v after the lock was released, want the full %v", dl.Sub(released), timeout)
	}
}
