package librato

import (
	"testing"

	"github.com/influxdata/telegraf/config"

	"github.com/seed-d22a899f/librato/internal/simlibrato"
)

// simPlugin is a started plugin writing to srv, for the regression tests
// the simulation's findings became.
func simPlugin(t *testing.T, srv *simlibrato.Server, configure ...func(*Librato)) *Librato {
	t.Helper()
	l := newLibrato()
	l.APIUser = config.NewSecret([]byte(simUser))
	l.APIToken = config.NewSecret([]byte(simToken))
	l.APIURL = "https://" + simHost + simlibrato.LegacyPath
	l.Log = &simLog{}
	l.transport = srv
	for _, f := range configure {
		f(l)
	}
	if err := l.Init(); err != nil {
		t.Fatal(err)
	}
	if err := l.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}
