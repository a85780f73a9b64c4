package delivery

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAdmissionProbesAfterAPause: after a pause the first request admitted
// is the probe; the next waits, without holding a slot, until the probe is
// done; committed counts what is in flight. synctest makes "is waiting"
// observable without sleeping.
func TestAdmissionProbesAfterAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{now: testEpoch()}
		a := newAdmission(clock, time.Minute, nil)
		by := clock.Now().Add(time.Hour)

		a.pause(10 * time.Second)
		probe, err := a.admit(t.Context(), by, by)
		require.NoError(t, err)
		require.True(t, probe.probe, "the first request after a pause probes")
		require.Equal(t, []time.Duration{10 * time.Second}, clock.slept, "after sleeping out the pause")
		require.Equal(t, int64(1), a.committed.Load())

		next := make(chan ticket, 1)
		go func() {
			tk, err := a.admit(t.Context(), by, by)
			if err == nil {
				next <- tk
			}
		}()
		synctest.Wait()
		require.Empty(t, next, "the others wait for the probe's answer")
		require.Equal(t, int64(1), a.committed.Load(), "a waiting request holds no slot")

		a.done(probe)
		synctest.Wait()
		tk := <-next
		require.False(t, tk.probe)
		require.Equal(t, int64(1), a.committed.Load())
		a.done(tk)
		require.Zero(t, a.committed.Load())
	})
}
