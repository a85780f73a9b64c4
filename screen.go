package librato

import (
	"time"

	"github.com/influxdata/telegraf"
)

// Screens between conversion and delivery: the series guard
// (max_new_series) and the collapsed-series warning. They see every flush's
// points before delivery reorders them, and count what they find only once
// the flush is delivered: a failed Write's metrics come back in the retry.

func (l *Librato) initScreens() error {
	period, err := checkSeriesGuard(l.MaxNewSeries, time.Duration(l.MaxNewSeriesPeriod))
	if err != nil {
		return err
	}
	if l.MaxNewSeries > 0 {
		l.guard = newSeriesGuard(l.MaxNewSeries, period, l.stats, l.Log)
	}
	l.collisions = newCollisionFinder(l.Template, l.SourceOverrideTag, l.stats, l.Log)
	return nil
}

// screen applies the series guard to pts (in place) and counts collisions.
// tagged is the API the points are sent to.
func (l *Librato) screen(metrics []telegraf.Metric, pts []point, conv *converter, tagged bool) []point {
	if l.guard != nil {
		pts = l.guard.screen(pts, tagged)
	}
	l.collisions.find(metrics, pts, tagged, conv)
	return pts
}

// settleScreens reports what the screens found, once the flush's fate is known.
func (l *Librato) settleScreens(delivered bool) {
	if l.guard != nil {
		l.guard.settle(delivered)
	}
	l.collisions.settle(delivered)
}
