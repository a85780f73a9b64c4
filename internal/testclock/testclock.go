// Package testclock is the one setting for where tests' fake clocks start.
//
// Fake clocks start at Epoch(): a fixed date, moved by the environment
// variable LIBRATO_TEST_EPOCH_SHIFT (a Go duration such as "87600h", ten
// years ahead, or "-8760h"). CI runs the unit tests with the shift too, so
// no test can come to depend on how the real date relates to a literal.
package testclock

import (
	"context"
	"fmt"
	"os"
	"time"
)

// EnvShift names the environment variable that moves Epoch.
const EnvShift = "LIBRATO_TEST_EPOCH_SHIFT"

// base is the unshifted epoch: an arbitrary, fixed moment.
var base = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// Epoch is where fake clocks start: base moved by LIBRATO_TEST_EPOCH_SHIFT.
// An invalid shift panics, in tests only, so a typo cannot silently run
// the unshifted tests.
func Epoch() time.Time {
	shift, err := Shift()
	if err != nil {
		panic(err)
	}
	return base.Add(shift)
}

// Shift is the parsed LIBRATO_TEST_EPOCH_SHIFT, 0 when unset.
func Shift() (time.Duration, error) {
	v := os.Getenv(EnvShift)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", EnvShift, v, err)
	}
	return d, nil
}

// WithDeadline is context.WithDeadline for a fake clock that reads now: a
// fake time must never become a real timer's deadline. A deadline already
// past ends the context at once; one still ahead can end only by
// cancellation, since fake time passes only when the test moves it.
func WithDeadline(ctx context.Context, now, deadline time.Time) (context.Context, context.CancelFunc) {
	if !now.Before(deadline) {
		return context.WithDeadline(ctx, time.Time{})
	}
	return context.WithCancel(ctx)
}
