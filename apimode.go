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
type apiChoice struct {
	mode string // legacy, tagged or auto

	mu         sync.Mutex
	learned    string // auto: "", legacy or tagged
	learnedAt  time.Time
	logLearned func(tagged bool)
}

// forFlush returns whether a new flush (not a retry) writes tagged
// measurements.
func (a *apiChoice) forFlush(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return chooseTagged(a.mode, a.learned, a.learnedAt, now)
}

// chooseTagged is the policy: auto tries tagged until the account says it
// has no tag-based measurements, then stays with legacy, asking again after
// recheckTagged.
func chooseTagged(mode, learned string, learnedAt, now time.Time) bool {
	switch mode {
	case apiTagged:
		return true
	case apiLegacy:
		return false
	}
	if learned == apiLegacy {
		return now.Sub(learnedAt) >= recheckTagged
	}
	return true
}

// learn records what a flush found out; it reports whether that changed.
func (a *apiChoice) learn(tagged bool, now time.Time) {
	if a.mode != apiAuto {
		return
	}
	api := apiLegacy
	if tagged {
		api = apiTagged
	}
	a.mu.Lock()
	changed := a.learned != api
	a.learned, a.learnedAt = api, now
	a.mu.Unlock()
	if changed && a.logLearned != nil {
		a.logLearned(tagged)
	}
}
