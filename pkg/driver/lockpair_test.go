package driver

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Operations over the same two volumes, named in opposite orders, all finish:
// none holds one lock while waiting for the other.
func TestLockPairOppositeOrdersDoNotDeadlock(t *testing.T) {
	k := NewKeyedLocks()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := "vol-a", "vol-b"
			if i%2 == 1 {
				a, b = b, a
			}
			unlock, err := k.LockPair(ctx, a, b)
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(100 * time.Microsecond)
			unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("LockPair: %v (a deadlock ran into the deadline)", err)
	}
	if n := k.Len(); n != 0 {
		t.Errorf("%d locks left after every pair was released", n)
	}
}

func TestLockPairHoldsBothAndReleasesOnError(t *testing.T) {
	k := NewKeyedLocks()
	unlock, err := k.LockPair(context.Background(), "b", "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if _, err := k.Lock(ctx, key); status.Code(err) != codes.Aborted {
			t.Errorf("Lock(%s) while the pair is held = %v, want Aborted", key, err)
		}
		cancel()
	}
	unlock()

	// The second lock cannot be had: the first is given back.
	unlockB, err := k.Lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.LockPair(ctx, "a", "b"); status.Code(err) != codes.Aborted {
		t.Errorf("LockPair with b held = %v, want Aborted", err)
	}
	unlockA, err := k.Lock(context.Background(), "a")
	if err != nil {
		t.Fatalf("a is still held after a failed LockPair: %v", err)
	}
	unlockA()
	unlockB()

	// Equal keys: one lock, one release.
	unlock, err = k.LockPair(context.Background(), "same", "same")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if n := k.Len(); n != 0 {
		t.Errorf("%d locks left", n)
	}
}
