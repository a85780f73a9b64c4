package main

import (
	"context"
	"io"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/models"
)

const (
	// After a signal, stdin is still read until it closes or stays idle this
	// long, so lines written before the signal are not left in the pipe, nor
	// what Telegraf flushes when the whole process group got the signal.
	drainIdle = time.Second
	// ... but for at most this long (and half the shutdown_timeout), so a
	// never-ending writer cannot hold up the shutdown.
	drainMax = 5 * time.Second
	// Pause between failed final-flush attempts (each attempt itself retries
	// for the plugin's retry_budget).
	retryPause = 500 * time.Millisecond
	// Parsed metrics waiting between the reader and the buffer.
	inputQueue = 1024
)

// runner moves metrics from stdin into the RunningOutput and flushes it.
// All buffer operations happen on one goroutine; the buffer never overflows
// because reading pauses while it is full.
type runner struct {
	ro              *models.RunningOutput
	log             telegraf.Logger
	flushInterval   time.Duration
	shutdownTimeout time.Duration
	batchSize       int
	bufferLimit     int

	lastFailed bool
}

func (r *runner) run(ctx context.Context, stdin io.Reader) int {
	in := make(chan telegraf.Metric, inputQueue)
	done := make(chan struct{})
	defer close(done)
	go readMetrics(stdin, in, done, r.log)

	// The shutdown deadline counts from the signal, even if it arrives in
	// the middle of a flush.
	signalled := make(chan time.Time, 1)
	stopAfter := context.AfterFunc(ctx, func() { signalled <- time.Now() })
	defer stopAfter()

	if eof := r.loop(ctx, in); eof {
		r.log.Debug("stdin closed: final flush")
		return r.finish(time.Now().Add(r.shutdownTimeout), in)
	}
	deadline := (<-signalled).Add(r.shutdownTimeout)
	r.log.Debugf("Stopping: reading what is left on stdin, then a final flush of at most %s", r.shutdownTimeout)
	r.drain(in, min(drainMax, r.shutdownTimeout/2))
	return r.finish(deadline, in)
}

// loop runs until stdin closes (true) or ctx is cancelled (false).
func (r *runner) loop(ctx context.Context, in <-chan telegraf.Metric) (eof bool) {
	ticker := time.NewTicker(r.flushInterval)
	defer ticker.Stop()
	for {
		n := r.ro.BufferLength()
		if n >= r.batchSize && !r.lastFailed {
			r.flush()
			continue
		}
		src := in
		if n >= r.bufferLimit {
			src = nil // full: stdin waits until a flush succeeds
		}
		select {
		case <-ctx.Done():
			return false
		case m, ok := <-src:
			if !ok {
				return true
			}
			r.ro.AddMetricNoCopy(m)
		case <-ticker.C:
			r.flush()
		}
	}
}

// flush writes the whole buffer; on failure the RunningOutput keeps the
// metrics for the next tick.
func (r *runner) flush() {
	if r.ro.BufferLength() == 0 {
		return
	}
	start := time.Now()
	err := r.ro.Write()
	r.lastFailed = err != nil
	if err != nil {
		r.log.Errorf("Error writing to %s: %v (%d metrics kept for the next flush)", r.ro.LogName(), err, r.ro.BufferLength())
		return
	}
	r.log.Debugf("Flushed %s in %s", r.ro.LogName(), time.Since(start))
}

// drain keeps reading after a signal until stdin closes, stays idle for
// drainIdle, maxWait passed, or the buffer is full.
func (r *runner) drain(in <-chan telegraf.Metric, maxWait time.Duration) {
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	limit := time.NewTimer(maxWait)
	defer limit.Stop()
	for r.ro.BufferLength() < r.bufferLimit {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			r.ro.AddMetricNoCopy(m)
			idle.Reset(drainIdle)
		case <-idle.C:
			return
		case <-limit.C:
			return
		}
	}
}

// finish moves what the reader already parsed into the buffer, retries the
// final flush until it succeeds or the deadline passes, and closes the
// output. It returns the exit code.
func (r *runner) finish(deadline time.Time, in <-chan telegraf.Metric) int {
	left := 0
queued:
	for {
		select {
		case m, ok := <-in:
			if !ok {
				break queued
			}
			if r.ro.BufferLength() >= r.bufferLimit {
				left++
				continue
			}
			r.ro.AddMetricNoCopy(m)
		default:
			break queued
		}
	}
	if left > 0 {
		r.log.Errorf("Buffer full at shutdown: %d metric(s) read from stdin are lost", left)
	}

	for r.ro.BufferLength() > 0 && time.Now().Before(deadline) {
		finished, err := r.writeBefore(deadline)
		if !finished {
			r.log.Errorf("shutdown_timeout (%s) ran out during the final write: %d metric(s) may not have been delivered",
				r.shutdownTimeout, r.ro.BufferLength()+left)
			// The Write still runs: Close must not overlap it.
			return exitLostData
		}
		if err == nil {
			continue
		}
		r.log.Errorf("Final flush of %s failed, retrying: %v", r.ro.LogName(), err)
		if wait := min(retryPause, time.Until(deadline)); wait > 0 {
			time.Sleep(wait)
		}
	}
	lost := r.ro.BufferLength()
	r.ro.Close()
	if lost > 0 {
		r.log.Errorf("shutdown_timeout (%s) ran out: %d metric(s) were not delivered", r.shutdownTimeout, lost+left)
		return exitLostData
	}
	if left > 0 {
		return exitLostData
	}
	r.log.Debug("All metrics delivered")
	return exitOK
}

// writeBefore runs one Write, giving up waiting for it at the deadline.
func (r *runner) writeBefore(deadline time.Time) (finished bool, err error) {
	errc := make(chan error, 1)
	go func() { errc <- r.ro.Write() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-errc:
		return true, err
	case <-t.C:
		return false, nil
	}
}
