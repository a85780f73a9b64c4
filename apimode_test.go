package librato

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

func TestResolveEndpoints(t *testing.T) {
	cases := []struct {
		api, url             string
		legacy, tagged, root string
		errHas               string
	}{
		{apiLegacy, "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", ""},
		{apiTagged, "https://metrics-api.librato.com/v1/measurements/", "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", ""},
		{apiAuto, "https://metrics-api.librato.com", "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", ""},
		{apiAuto, "https://metrics-api.librato.com/v1/", "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/measurements", "https://metrics-api.librato.com", ""},
		{apiAuto, "http://127.0.0.1:8080/librato/v1/metrics", "http://127.0.0.1:8080/librato/v1/metrics", "http://127.0.0.1:8080/librato/v1/measurements", "http://127.0.0.1:8080/librato", ""},
		{apiAuto, "https://proxy.example.com/v1/measurements", "https://proxy.example.com/v1/metrics", "https://proxy.example.com/v1/measurements", "https://proxy.example.com", ""},
		{apiLegacy, "https://proxy.example.com/librato-in", "https://proxy.example.com/librato-in", "", "", ""},
		{apiTagged, "https://metrics-api.librato.com/v1/metrics", "", "", "", `is the legacy API's endpoint, but api = "tagged": set api_url to "https://metrics-api.librato.com/v1/measurements"`},
		{apiLegacy, "https://metrics-api.librato.com/v1/measurements", "", "", "", `is the tagged API's endpoint, but api = "legacy": set api_url to "https://metrics-api.librato.com/v1/metrics"`},
	}
	for _, tc := range cases {
		t.Run(tc.api+" "+tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			eps, err := resolveEndpoints(tc.api, u)
			if tc.errHas != "" {
				require.ErrorContains(t, err, tc.errHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.legacy, eps.legacy.url)
			if tc.tagged != "" {
				require.Equal(t, tc.tagged, eps.tagged.url)
			}
			require.Equal(t, tc.root, eps.root)
		})
	}
}

func TestChooseTagged(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		mode      string
		learned   string
		learnedAt time.Time
		pending   bool
		want      bool
	}{
		{"legacy", apiLegacy, "", time.Time{}, false, false},
		{"tagged", apiTagged, "", time.Time{}, false, true},
		{"auto, nothing learned: try tagged", apiAuto, "", time.Time{}, false, true},
		{"auto, tagged account", apiAuto, apiTagged, now.Add(-48 * time.Hour), false, true},
		{"auto, legacy account", apiAuto, apiLegacy, now.Add(-time.Hour), false, false},
		{"auto, legacy account, time to ask again", apiAuto, apiLegacy, now.Add(-recheckTagged), false, true},
		{"auto, asking again waits for a pending retry", apiAuto, apiLegacy, now.Add(-recheckTagged), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, chooseTagged(tc.mode, tc.learned, tc.learnedAt, now, tc.pending))
		})
	}
}

// TestAutoOnLegacyAccount: the account answers 403 "not enabled" on
// /v1/measurements. Every gauge arrives once at /v1/metrics with the
// template's source, and later flushes go there directly.
func TestAutoOnLegacyAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{TaggedDisabled: true})
	logger := newCaptureLogger()
	l := newPlugin(t, fake.URL(), func(l *Librato) {
		l.API = apiAuto
		l.Log = logger
	})
	metrics, want := workload(1000)
	require.NoError(t, l.Write(metrics[:500]))
	require.NoError(t, l.Write(metrics[500:]))

	requireExactlyOnce(t, fake, want)
	require.Empty(t, fake.Measurements())
	tagged := 0
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, taggedPath) {
			tagged++
		}
	}
	require.LessOrEqual(t, tagged, defaultConcurrentWrites, "only the first flush asks the tagged API")
	require.Contains(t, logText(logger), `api = "auto": the account has no tag-based measurements`)
	require.Zero(t, l.stats.dropped[reasonRejected].Get())
}

func TestAutoOnTaggedAccount(t *testing.T) {
	fake := newFake(t, fakelibrato.Options{})
	l := newPlugin(t, fake.LegacyURL(), func(l *Librato) { l.API = apiAuto })
	metrics, want := workload(1000)
	require.NoError(t, l.Write(metrics))
	requireExactlyOnceIn(t, fake, apiTagged, want)
	require.Empty(t, fake.Gauges())
}

func TestAPIURLMustMatchAPI(t *testing.T) {
	l := unstarted()
	l.API = apiTagged
	l.APIURL = "https://metrics-api.librato.com/v1/metrics"
	require.ErrorContains(t, l.Init(), `set api_url to "https://metrics-api.librato.com/v1/measurements", or api = "legacy" or "auto"`)
}
