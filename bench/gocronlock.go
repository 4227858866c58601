package main

import (
	"context"
	"errors"

	"github.com/go-co-op/gocron/v2"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// redsyncLocker is a gocron.Locker on redsync, as gocron-redis-lock makes
// one: a mutex per job name, locked with LockContext when the job is due
// (with WithTries(1), as its README shows, one attempt) and unlocked when
// the run ends. done, if set, is told when each attempt returns, and
// whether it got the lock.
type redsyncLocker struct {
	rs   *redsync.Redsync
	opts []redsync.Option
	done func(ok bool)
}

var (
	_ gocron.Locker = (*redsyncLocker)(nil)
	_ gocron.Lock   = (*redsyncLock)(nil)
)

var (
	errNotObtained = errors.New("gocron redsync locker: lock not obtained")
	errNotReleased = errors.New("gocron redsync locker: lock not released")
)

func newRedsyncLocker(c redis.UniversalClient, done func(ok bool), opts ...redsync.Option) *redsyncLocker {
	return &redsyncLocker{rs: redsync.New(goredis.NewPool(c)), opts: opts, done: done}
}

func (l *redsyncLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	mu := l.rs.NewMutex(key, l.opts...)
	err := mu.LockContext(ctx)
	if l.done != nil {
		l.done(err == nil)
	}
	if err != nil {
		return nil, errNotObtained
	}
	return &redsyncLock{mu: mu}, nil
}

type redsyncLock struct{ mu *redsync.Mutex }

func (l *redsyncLock) Unlock(ctx context.Context) error {
	ok, err := l.mu.UnlockContext(ctx)
	if err != nil || !ok {
		return errNotReleased
	}
	return nil
}
