package driver

import "context"

// LockPair takes the locks of two keys for an operation that touches two
// volumes (a clone reads one and creates the other; a snapshot will too). The
// locks are always taken in the same order, the smaller key first, so two
// such operations over the same pair, named in either order, cannot each
// hold one lock and wait for the other. Equal keys take one lock. On error
// (the context ended while waiting) no lock is held.
func (k *KeyedLocks) LockPair(ctx context.Context, a, b string) (func(), error) {
	if a == b {
		return k.Lock(ctx, a)
	}
	if b < a {
		a, b = b, a
	}
	unlockA, err := k.Lock(ctx, a)
	if err != nil {
		return nil, err
	}
	unlockB, err := k.Lock(ctx, b)
	if err != nil {
		unlockA()
		return nil, err
	}
	return func() { unlockB(); unlockA() }, nil
}
