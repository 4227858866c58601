package scheduler

import (
	"sync"
	"time"
)

// Claims race: the replica whose claim reaches the store first runs the
// tick. Left alone, the replica whose clock runs ahead always wins (its
// claim waits at the store's door, NotYet, and goes in the instant the
// store's clock reaches the tick), and the one behind never does: one pod
// does all the work. Two things even the race out:
//
//   - Each replica fires its claims when the store's clock, not its own,
//     reaches the tick (clocks that disagree by less than max_clock_skew
//     then no longer decide who wins);
//   - a replica that has seen a peer claim a tick in the last minute
//     sends its claims a little later for every run it has going, so that
//     the tick goes to a replica with less to do, and spreads the claims
//     of ticks due together over a few milliseconds at random, so that
//     neither a millisecond's error in its estimate of the store's clock
//     nor batching hands every tick of an instant to the same replica.

// loadStep is how much later a contended replica sends its claims for each
// run it has going, and loadMost the most it ever waits: well below any
// tick's window (the shortest is a second), so that no tick is missed for
// it, and enough to lose a race to a peer with less to do.
const (
	loadStep = 5 * time.Millisecond
	loadMost = 50 * time.Millisecond
)

// spreadSlots is how many slots of spreadSlot a contended replica spreads
// the claims of ticks due together over: more than the error of the
// estimate of the store's clock (a millisecond or two), little enough to
// keep batches large and runs prompt.
const (
	spreadSlots = 10
	spreadSlot  = time.Millisecond
)

// contendedFor is how long after losing a race a replica takes itself to
// have peers.
const contendedFor = time.Minute

// clockSamples is how many recent samples of the store's clock are kept.
const clockSamples = 32

// storeClock keeps recent lower bounds of how far the store's clock runs
// ahead of this replica's.
type storeClock struct {
	mu     sync.Mutex
	bounds [clockSamples]time.Duration
	n      int // samples taken, ever
}

// noteStoreClock takes a sample from an answer received at recv that read
// the store's clock at store (truncated to the millisecond).
//
// The store read its clock before recv, and its clock then read store or a
// little more, so store - recv is a lower bound of how far the store's
// clock runs ahead: a claim fired at tick - bound never reaches the store
// before its clock reaches the tick (a claim that did would come back
// NotYet and lose the race by a round trip). Of the recent bounds the
// highest is the tightest; a slow answer only gives a looser one.
func (s *Scheduler) noteStoreClock(recv, store time.Time) {
	if store.IsZero() {
		return
	}
	bound := store.Sub(recv)
	c := &s.storeClock
	c.mu.Lock()
	c.bounds[c.n%clockSamples] = bound
	c.n++
	best := bound
	for _, b := range c.bounds[:min(c.n, clockSamples)] {
		best = max(best, b)
	}
	c.mu.Unlock()
	s.offset.Store(int64(best))
}

// storeAhead is how far the store's clock runs ahead of this replica's
// (negative: behind), at least, as far as it is trusted
// to correct claims: not beyond max_clock_skew, past which this replica's
// clock is wrong and is reported as such instead.
func (s *Scheduler) storeAhead() time.Duration {
	d := time.Duration(s.offset.Load()) // 0 until the first sample
	if d > s.maxSkew || -d > s.maxSkew {
		return 0
	}
	return d
}

// fireAt is when, on this replica's clock, it claims tick of t: when the
// store's clock reaches it, plus the task's jitter.
func (s *Scheduler) fireAt(t *job, tick time.Time) time.Time {
	return tick.Add(s.jitter(t) - s.storeAhead())
}

// lostRace notes that a peer claimed a tick first, or the task's tick
// before this one: this replica has peers.
func (s *Scheduler) lostRace() { s.contendedAt.Store(s.clock.Now().UnixNano()) }

// contended reports whether a peer has claimed a tick in the last
// contendedFor: a replica alone never delays its claims.
func (s *Scheduler) contended() bool {
	at := s.contendedAt.Load()
	return at != 0 && s.clock.Now().Sub(time.Unix(0, at)) <= contendedFor
}

// loadDelay is how much later than its tick a contended replica sends a
// claim for the runs it has going.
func (s *Scheduler) loadDelay() time.Duration {
	return min(time.Duration(s.running.Load())*loadStep, loadMost)
}

// randN draws from [0, n).
func (s *Scheduler) randN(n int) int {
	s.jitterMu.Lock()
	defer s.jitterMu.Unlock()
	return s.rand.IntN(n)
}
