package driver

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// KeyedLocks serialises operations per key (a volume ID). A caller waits for
// the lock until its context ends and then gets Aborted, the code the CSI
// spec gives to "an operation is already in progress for this volume".
type KeyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch      chan struct{}
	waiters int
}

// NewKeyedLocks returns an empty lock table.
func NewKeyedLocks() *KeyedLocks { return &KeyedLocks{locks: map[string]*keyedLock{}} }

// Lock takes the lock of key and returns its unlock function.
func (k *KeyedLocks) Lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.waiters++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.done(key, l) }, nil
	case <-ctx.Done():
		k.done(key, l)
		return nil, status.Errorf(codes.Aborted, "volume %s: another operation on this volume is still in progress; retry later", key)
	}
}

func (k *KeyedLocks) done(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.waiters--
	if l.waiters == 0 {
		delete(k.locks, key)
	}
}

// Len is the number of keys with a holder or waiter; for tests.
func (k *KeyedLocks) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}
