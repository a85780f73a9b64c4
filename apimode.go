package librato

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seed-d22a899f/librato/internal/delivery"
)

// Which Librato API a flush writes to: fixed by `api`, or, with
// api = "auto", learned from the account's answers.

const (
	apiLegacy = "legacy"
	apiTagged = "tagged"
	apiAuto   = "auto"

	defaultAPIRoot = "https://metrics-api.librato.com"
	legacyPath     = "/v1/metrics"
	taggedPath     = "/v1/measurements"

	// recheckTagged: an account learned to be legacy-only is asked again
	// this rarely, in case tag-based measurements were enabled since.
	recheckTagged = 24 * time.Hour
)

// errTagsNotEnabled marks Librato's 403 "Tag based measurements are not
// enabled for this account", the answer api = "auto" learns from.
var errTagsNotEnabled = delivery.ErrTagsNotEnabled

// endpoint is where one API's requests go.
type endpoint struct {
	url    string
	tagged bool
}

// endpoints are the URLs of both APIs, as far as api_url tells them.
type endpoints struct {
	legacy, tagged endpoint
	// root is the API root, for the credential check; empty when api_url
	// has a path of its own (a proxy) that does not end in a known one.
	root string
}

// resolveEndpoints derives the URLs from api and api_url (already parsed,
// without credentials). With auto, api_url may name either endpoint or the
// API root. A path naming the other API's endpoint is an error with the fix.
func resolveEndpoints(api string, u *url.URL) (endpoints, error) {
	base := *u
	path := strings.TrimRight(base.Path, "/")
	root := ""
	switch {
	case strings.HasSuffix(path, legacyPath):
		root = strings.TrimSuffix(path, legacyPath)
	case strings.HasSuffix(path, taggedPath):
		root = strings.TrimSuffix(path, taggedPath)
	case api == apiAuto:
		root = strings.TrimSuffix(path, "/v1")
	}
	at := func(p string) string {
		c := base
		c.Path = root + p
		c.RawPath = ""
		return c.String()
	}
	eps := endpoints{legacy: endpoint{url: at(legacyPath)}, tagged: endpoint{url: at(taggedPath), tagged: true}}
	known := strings.HasSuffix(path, legacyPath) || strings.HasSuffix(path, taggedPath)
	if known || api == apiAuto {
		eps.root = at("")
	}
	switch {
	case api == apiTagged && strings.HasSuffix(path, legacyPath):
		return eps, fmt.Errorf("api_url %q is the legacy API's endpoint, but api = %q: set api_url to %q, or api = %q or %q",
			withoutUser(u), api, eps.tagged.url, apiLegacy, apiAuto)
	case api == apiLegacy && strings.HasSuffix(path, taggedPath):
		return eps, fmt.Errorf("api_url %q is the tagged API's endpoint, but api = %q: set api_url to %q, or api = %q or %q",
			withoutUser(u), api, eps.legacy.url, apiTagged, apiAuto)
	case api == apiLegacy && !strings.HasSuffix(path, legacyPath):
		eps.legacy.url = u.String() // a proxy's own path: used as given
	case api == apiTagged && !strings.HasSuffix(path, taggedPath):
		eps.tagged.url = u.String()
	}
	return eps, nil
}

// defaultAPIURL is api_url when none is set.
func defaultAPIURL(api string) string {
	switch api {
	case apiTagged:
		return defaultAPIRoot + taggedPath
	case apiAuto:
		return defaultAPIRoot
	}
	return defaultAPIRoot + legacyPath
}

// apiChoice picks the API of each flush.
//
// With api = "auto" it decides only from the tagged API's own answers to
// requests that were sent: an acceptance (2xx) of a tagged request means the
// account takes tag-based measurements; Librato's 403 "not enabled" JSON
// means it does not, and the flush falls back to the legacy API in the same
// Write. Nothing else decides: not a flush that sent nothing, not a legacy
// success, not a proxy's page. A legacy decision is asked again
// recheckTagged after it was taken, however many flushes succeed meanwhile.
//
// Metrics without tags: while the account is not known to take tagged
// measurements, a flush whose tagged conversion drops metrics for having no
// tags asks the tagged API with the rest. If that decides "tagged", the
// no_tags drops are real (as with api = "tagged"); if it decides "legacy",
// or nothing could be asked or decided (nothing but tagless metrics, say),
// the whole flush goes to the legacy API, where they have a source. Either
// way nothing is dropped for lack of tags on inference.
type apiChoice struct {
	mode string // legacy, tagged or auto
	// now is the clock of decisions and re-checks (time.Now unless a
	// test sets it): they span days, so tests must not wait for them.
	now func() time.Time

	mu      sync.Mutex
	learned string // auto: "", legacy or tagged
	// decidedAt: when learned was decided, from which a legacy decision's
	// re-check is counted.
	decidedAt  time.Time
	logLearned func(tagged bool)
}

// forFlush returns whether a new flush (not a retry) writes tagged
// measurements.
func (a *apiChoice) forFlush(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return chooseTagged(a.mode, a.learned, a.decidedAt, now)
}

// taggedKnown reports whether the tagged API is the account's for sure:
// api = "tagged", or auto after a tagged request was accepted. Only then are
// the tagged conversion's no_tags drops final.
func (a *apiChoice) taggedKnown() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode == apiTagged || a.mode == apiAuto && a.learned == apiTagged
}

// chooseTagged is the policy: auto tries tagged until the account says it
// has no tag-based measurements, then stays with legacy, asking again
// recheckTagged after that decision.
func chooseTagged(mode, learned string, decidedAt, now time.Time) bool {
	switch mode {
	case apiTagged:
		return true
	case apiLegacy:
		return false
	}
	if learned == apiLegacy {
		return now.Sub(decidedAt) >= recheckTagged
	}
	return true
}

// learn records an answer of the tagged API in auto mode: accepted (the
// account takes tagged measurements) or "not enabled". Call it for nothing
// else.
func (a *apiChoice) learn(accepted bool, now time.Time) {
	if a.mode != apiAuto {
		return
	}
	a.mu.Lock()
	learned, decidedAt := decide(a.learned, a.decidedAt, accepted, now)
	changed := learned != a.learned
	a.learned, a.decidedAt = learned, decidedAt
	a.mu.Unlock()
	if changed && a.logLearned != nil {
		a.logLearned(accepted)
	}
}

// decide is the learning policy. A "not enabled" is a legacy decision taken
// now, also when it confirms an earlier one (a re-check): the next re-check
// is counted from it. An acceptance confirming "tagged" changes nothing.
func decide(learned string, decidedAt time.Time, accepted bool, now time.Time) (string, time.Time) {
	switch {
	case !accepted:
		return apiLegacy, now
	case learned == apiTagged:
		return learned, decidedAt
	}
	return apiTagged, now
}
