package main

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
)

const (
	// The reader fsyncs a batch of records when stdin has nothing more
	// buffered, or sooner at these sizes so one sync never waits long.
	spoolBatchRecords = 5000
	spoolBatchBytes   = 4 << 20
	// spoolRetry is the pause before trying again to write the spool (a
	// full disk); stdin is not read meanwhile.
	spoolRetry = time.Second
)

// spoolRunner is the runner with a spool: stdin → spool (fsynced) → the
// RunningOutput's buffer → Write. A record is settled once Telegraf's output
// model reports its metric accepted (the plugin's Write returned nil) or
// dropped by the output's filters; the spool's head then moves past every
// settled record that has no unsettled one before it.
type spoolRunner struct {
	*runner
	sp *spool

	mu      sync.Mutex
	fed     []uint64            // sequence numbers handed to the buffer, ascending
	settled map[uint64]struct{} // fed and settled, not yet popped from fed
}

func newSpoolRunner(r *runner, sp *spool) *spoolRunner {
	return &spoolRunner{runner: r, sp: sp, settled: make(map[uint64]struct{})}
}

func (r *spoolRunner) run(ctx context.Context, stdin io.Reader) int {
	appended := make(chan struct{}, 1)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		spoolInput(stdin, r.sp, appended, r.log)
	}()

	signalled := make(chan time.Time, 1)
	stopAfter := context.AfterFunc(ctx, func() { signalled <- time.Now() })
	defer stopAfter()

	if r.loop(ctx, appended, eof) {
		r.log.Debug("stdin closed: final flush")
		return r.finish(time.Now().Add(r.shutdownTimeout))
	}
	deadline := (<-signalled).Add(r.shutdownTimeout)
	r.log.Debugf("Stopping: spooling what is left on stdin, then a final flush of at most %s", r.shutdownTimeout)
	r.drain(appended, eof, min(drainMax, r.shutdownTimeout/2))
	return r.finish(deadline)
}

// loop runs until stdin closes (true) or ctx is cancelled (false).
func (r *spoolRunner) loop(ctx context.Context, appended, eof <-chan struct{}) (closed bool) {
	ticker := time.NewTicker(r.flushInterval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		r.feed()
		if r.ro.BufferLength() >= r.batchSize && !r.lastFailed {
			r.flushAndSettle()
			continue
		}
		select {
		case <-ctx.Done():
			return false
		case <-appended:
		case <-eof:
			return true
		case <-ticker.C:
			r.flushAndSettle()
		}
	}
	return false
}

// drain waits, after a signal, until stdin closes, stays idle for drainIdle
// or maxWait passed: whatever arrives meanwhile is spooled.
func (*spoolRunner) drain(appended, eof <-chan struct{}, maxWait time.Duration) {
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	limit := time.NewTimer(maxWait)
	defer limit.Stop()
	for {
		select {
		case <-eof:
			return
		case <-appended:
			idle.Reset(drainIdle)
		case <-idle.C:
			return
		case <-limit.C:
			return
		}
	}
}

// feed moves spooled records into the buffer while it has room.
func (r *spoolRunner) feed() {
	room := r.bufferLimit - r.ro.BufferLength()
	if room <= 0 {
		return
	}
	recs, err := r.sp.read(room)
	if err != nil && !errors.Is(err, errSpoolClosed) {
		r.log.Errorf("Reading the spool: %v", err)
	}
	if len(recs) == 0 {
		return
	}
	parser, perr := newLineParser()
	if perr != nil {
		r.log.Errorf("creating the influx parser: %v", perr)
		return
	}
	for _, rec := range recs {
		metrics, err := parser.parse(rec.payload)
		if err != nil || len(metrics) != 1 {
			// Cannot happen for records this program wrote (it spools what
			// it parsed); a record that does not parse is settled, not
			// retried for ever.
			r.log.Errorf("Spooled record %d does not parse (%v): skipped", rec.seq, err)
			r.mu.Lock()
			r.fed = append(r.fed, rec.seq)
			r.settled[rec.seq] = struct{}{}
			r.mu.Unlock()
			continue
		}
		seq := rec.seq
		tracked, _ := metric.WithTracking(metrics[0], func(telegraf.DeliveryInfo) { r.settle(seq) })
		// Registered before the buffer sees it: a filter may drop it, and
		// so settle it, at once.
		r.mu.Lock()
		r.fed = append(r.fed, seq)
		r.mu.Unlock()
		r.ro.AddMetricNoCopy(tracked)
	}
}

// settle is the tracking callback; it may run on the goroutine of a Write
// that outlived the shutdown deadline.
func (r *spoolRunner) settle(seq uint64) {
	r.mu.Lock()
	r.settled[seq] = struct{}{}
	r.mu.Unlock()
}

// head pops the settled prefix of fed and returns the new head: the
// oldest unsettled record handed out, else the read position.
func (r *spoolRunner) head() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(r.fed) {
		if _, ok := r.settled[r.fed[n]]; !ok {
			break
		}
		delete(r.settled, r.fed[n])
		n++
	}
	r.fed = r.fed[n:]
	if len(r.fed) > 0 {
		return r.fed[0], true
	}
	return 0, false
}

// saveHead moves the spool's head past what is settled.
func (r *spoolRunner) saveHead() {
	head, pending := r.head()
	if !pending {
		head = r.sp.readPosition()
	}
	if err := r.sp.advance(head); err != nil && !errors.Is(err, errSpoolClosed) {
		r.log.Errorf("Saving the spool's position: %v", err)
	}
}

func (r *spoolRunner) flushAndSettle() {
	r.flush()
	r.saveHead()
}

// finish retries the final flush until everything spooled is delivered or
// the deadline passes; what is left stays in the spool for the next start.
func (r *spoolRunner) finish(deadline time.Time) int {
	code := exitOK
	writing := false
	for time.Now().Before(deadline) {
		r.feed()
		if r.ro.BufferLength() == 0 {
			break
		}
		finished, err := r.writeBefore(deadline)
		if !finished {
			// The Write still runs: Close must not overlap it. What it
			// settles after this is sent again at the next start.
			writing = true
			break
		}
		r.saveHead()
		if err == nil {
			continue
		}
		r.log.Errorf("Final flush of %s failed, retrying: %v", r.ro.LogName(), err)
		if wait := min(retryPause, time.Until(deadline)); wait > 0 {
			time.Sleep(wait)
		}
	}
	head, pending := r.head()
	if !pending {
		head = r.sp.readPosition()
	}
	if err := r.sp.close(head); err != nil {
		r.log.Errorf("Closing the spool: %v", err)
		code = exitLostData
	}
	if !writing {
		r.ro.Close()
	}
	if left := r.sp.unsettled(); left > 0 {
		r.log.Warnf("%d metric(s) not yet delivered are kept in the spool %s for the next start", left, r.sp.dir)
		return code
	}
	r.log.Debug("All metrics delivered")
	return code
}

// spoolInput reads stdin into the spool until EOF, one fsynced append per
// batch, and signals appended after each. Lines are stored as the influx
// serializer writes the parsed metric, so a replay parses exactly what was
// read (with its timestamp, even if the line had none).
func spoolInput(stdin io.Reader, sp *spool, appended chan<- struct{}, log telegraf.Logger) {
	ser := &influx.Serializer{UintSupport: true}
	if err := ser.Init(); err != nil {
		log.Errorf("creating the influx serializer: %v", err)
		return
	}
	var batch [][]byte
	size := 0
	scanMetrics(stdin, log, func(metrics []telegraf.Metric, idle bool) bool {
		for _, m := range metrics {
			line, err := ser.Serialize(m)
			if err != nil {
				log.Errorf("Metric %q cannot be spooled, skipped: %v", m.Name(), err)
				continue
			}
			batch = append(batch, line)
			size += len(line)
		}
		if !idle && len(batch) < spoolBatchRecords && size < spoolBatchBytes {
			return true
		}
		if !appendRetrying(sp, batch, log) {
			return false
		}
		if len(batch) > 0 {
			log.Debugf("Spooled %d metric(s)", len(batch))
		}
		batch, size = batch[:0], 0
		select {
		case appended <- struct{}{}:
		default:
		}
		return true
	})
}

// appendRetrying appends, retrying a failed write (a full disk) until it
// succeeds or the spool is closed; meanwhile stdin is not read, which
// pushes back to Telegraf's own buffer.
func appendRetrying(sp *spool, batch [][]byte, log telegraf.Logger) bool {
	failing := false
	for {
		err := sp.append(batch)
		switch {
		case err == nil:
			if failing {
				log.Infof("Spool writable again")
			}
			return true
		case errors.Is(err, errSpoolClosed):
			if len(batch) > 0 {
				log.Errorf("%d metric(s) read from stdin after the spool closed are lost", len(batch))
			}
			return false
		}
		if !failing {
			log.Errorf("%v; not reading stdin until the spool can be written", err)
			failing = true
		}
		time.Sleep(spoolRetry)
	}
}
