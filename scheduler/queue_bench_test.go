package scheduler

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

const benchQueueLen = 100_000

var benchQueueStart = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// benchNext is how far a task's next tick lies after its last: anything up
// to an hour, as for a schedule of tasks with different periods.
func benchNext(rng *rand.Rand) time.Duration {
	return time.Duration(1+rng.IntN(3600)) * time.Second
}

// benchQueue returns n due ticks spread over the coming hour, with up to a
// second of jitter, in no heap order.
func benchQueue(n int, rng *rand.Rand) queue {
	jobs := make([]job, n)
	q := make(queue, n)
	for i := range q {
		tick := benchQueueStart.Add(benchNext(rng))
		q[i] = &due{task: &jobs[i], tick: tick, fireAt: tick.Add(time.Duration(rng.Int64N(int64(time.Second))))}
	}
	return q
}

// BenchmarkQueueFixHead is the loop's step after a tick: the earliest entry
// gets the task's next tick and sinks to its place (heap.Fix on the head).
func BenchmarkQueueFixHead(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := benchQueue(benchQueueLen, rng)
	heap.Init(&q)
	b.ReportAllocs()
	for b.Loop() {
		d := q[0]
		d.tick = d.tick.Add(benchNext(rng))
		d.fireAt = d.tick.Add(time.Duration(rng.Int64N(int64(time.Second))))
		heap.Fix(&q, 0)
	}
}

// BenchmarkQueuePopPush does the same step as a pop of the earliest entry
// and a push of its next tick, for comparison with heap.Fix.
func BenchmarkQueuePopPush(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := benchQueue(benchQueueLen, rng)
	heap.Init(&q)
	b.ReportAllocs()
	for b.Loop() {
		d := heap.Pop(&q).(*due)
		d.tick = d.tick.Add(benchNext(rng))
		d.fireAt = d.tick.Add(time.Duration(rng.Int64N(int64(time.Second))))
		heap.Push(&q, d)
	}
}

// BenchmarkQueueInit orders a queue of 100,000 entries, as the loop does on
// start and after each Update of the schedule.
func BenchmarkQueueInit(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	unordered := benchQueue(benchQueueLen, rng)
	q := make(queue, len(unordered))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		copy(q, unordered)
		b.StartTimer()
		heap.Init(&q)
	}
}
