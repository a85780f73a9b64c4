package simlibrato

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"html"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Mode is how the path to Librato behaves during an episode.
type Mode int

// The modes of an episode.
const (
	Healthy        Mode = iota
	Outage              // 500/502/503/504, some after storing
	ProxyHTML400        // a proxy's HTML 400 page
	Proxy413            // a proxy limits bodies: 413 HTML above a size
	ResetsBefore        // connections reset before Librato reads
	ResetsAfter         // Librato stores, then the connection resets
	Hangs               // answers never come, or bodies never end
	CutBodies           // Librato's answers are cut off mid-body
	Redirects           // 3xx with a Location echoing the credentials
	RateLimit429        // 429 with Retry-After or a spent budget, some after a partial store
	RateLimit403        // 403 "API limit"
	NotEnabled403       // 403 "not enabled" JSON on the tagged API (the account changed its mind)
	NotEnabledHTML      // a firewall's 403 HTML page that says "not enabled"
	RejectAll           // Librato-shaped 400 for everything (a server-side change, another account)
	AbsurdHeaders       // accepted, with absurd rate-limit headers
	LowBudget           // accepted, with a rate-limit budget running out
	numModes
)

var modeNames = [numModes]string{"healthy", "outage", "proxy-html-400", "proxy-413", "resets-before",
	"resets-after", "hangs", "cut-bodies", "redirects", "rate-limit-429", "rate-limit-403",
	"not-enabled-403", "not-enabled-html", "reject-all", "absurd-headers", "low-budget"}

func (m Mode) String() string { return modeNames[m] }

// Episode is a span of virtual time with one behaviour, applied to a share
// of the requests.
type Episode struct {
	From, To time.Time
	Mode     Mode
	Share    float64
	// Limit is Proxy413's body limit in bytes.
	Limit int
}

// Plan is a seeded schedule of episodes. Its choice for a request depends
// on the seed, the request's time, body and attempt, not on the order in
// which concurrent requests arrive.
type Plan struct {
	Seed     uint64
	Episodes []Episode
	// MaxLatency bounds each request's round trip.
	MaxLatency  time.Duration
	user, token string
}

// NewPlan draws episodes over [start, start+span) from rng.
func NewPlan(rng *rand.Rand, start time.Time, span time.Duration, user, token string) *Plan {
	p := &Plan{Seed: rng.Uint64(), user: user, token: token,
		MaxLatency: time.Duration(1+rng.IntN(300)) * time.Millisecond}
	for t := start; t.Before(start.Add(span)); {
		d := time.Duration(rng.Int64N(int64(span/3))) + 100*time.Millisecond
		e := Episode{From: t, To: t.Add(d), Mode: Mode(rng.IntN(int(numModes))), Share: []float64{0.2, 0.5, 1}[rng.IntN(3)]}
		switch {
		case rng.IntN(3) == 0:
			e.Mode = Healthy
		case e.Mode == RejectAll || e.Mode == NotEnabled403:
			e.Share = 1 // a server-side change: every request of the span
		}
		e.Limit = 200 + rng.IntN(2000)
		p.Episodes = append(p.Episodes, e)
		t = e.To
	}
	return p
}

// Fault chooses the fault for one request.
func (p *Plan) Fault(r *Request) Fault {
	h := fnv.New64a()
	h.Write(r.Body)
	rng := rand.New(rand.NewPCG(p.Seed^h.Sum64(), uint64(r.Time.UnixNano())^uint64(r.Attempt)<<48)) //nolint:gosec // a simulation's dice
	f := Fault{Kind: Normal, Latency: time.Duration(rng.Int64N(int64(p.MaxLatency) + 1))}
	var ep *Episode
	for i := range p.Episodes {
		if e := &p.Episodes[i]; !r.Time.Before(e.From) && r.Time.Before(e.To) {
			ep = e
		}
	}
	if ep == nil || ep.Mode == Healthy || rng.Float64() >= ep.Share {
		return f
	}
	f.Label = ep.Mode.String()
	switch ep.Mode {
	case Outage:
		f.Kind, f.Status = Answer, []int{500, 502, 503, 504}[rng.IntN(4)]
		f.Body = []byte("<html><body><h1>" + strconv.Itoa(f.Status) + " Service Unavailable</h1></body></html>")
		if rng.IntN(3) == 0 {
			f.Store = StoreValid
			f.Label += "-after-store"
		}
	case ProxyHTML400:
		f.Kind, f.Status = Answer, http.StatusBadRequest
		f.Body = []byte("<html><head><title>400 Bad Request</title></head><body>Bad Request: " + p.echo(rng) + "</body></html>")
	case Proxy413:
		if r.Size <= ep.Limit {
			f.Label = ""
			return f
		}
		f.Kind, f.Status = Answer, http.StatusRequestEntityTooLarge
		f.Body = []byte("<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>")
	case ResetsBefore:
		f.Kind = ResetBefore
	case ResetsAfter:
		f.Kind = ResetAfter
	case Hangs:
		if rng.IntN(2) == 0 {
			f.Kind = HangBody
		} else {
			f.Kind, f.Store = HangHeaders, StoreMode(rng.IntN(2))
		}
	case CutBodies:
		f.Kind = CutBody
	case Redirects:
		f.Kind, f.Status = Answer, []int{301, 302, 307, 308}[rng.IntN(4)]
		f.Header = http.Header{"Location": {"https://sso.example.net/login?user=" + url.QueryEscape(p.user) +
			"&token=" + url.QueryEscape(p.token) + "&next=" + url.QueryEscape(r.Path)}}
	case RateLimit429:
		f.Kind, f.Status = Answer, http.StatusTooManyRequests
		f.Header = http.Header{}
		if rng.IntN(2) == 0 {
			f.Header.Set("Retry-After", strconv.Itoa(rng.IntN(5)))
		} else {
			f.Header.Set("X-Librato-RateLimit-Std", fmt.Sprintf("limit=100,remaining=0,reset=%d", rng.IntN(10)))
		}
		f.Body = []byte(`{"request_time":1,"error":"You have hit the API limit for measurements [measure:raw_rate]."}`)
		if rng.IntN(3) == 0 {
			f.Store = StorePart
			f.Label += "-after-partial-store"
		}
	case RateLimit403:
		f.Kind, f.Status = Answer, http.StatusForbidden
		f.Body = []byte(`{"request_time":1,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: support."}`)
	case NotEnabled403:
		if !r.Tagged {
			f.Label = ""
			return f
		}
		f.Kind, f.Status = Answer, http.StatusForbidden
		f.Body = []byte(`{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`)
	case NotEnabledHTML:
		f.Kind, f.Status = Answer, http.StatusForbidden
		f.Body = []byte("<html><body>Access denied: this feature is not enabled for your network.</body></html>")
	case RejectAll:
		f.Kind, f.Status = Answer, []int{400, 422}[rng.IntN(2)]
		f.Body = []byte(`{"errors":{"params":{"value":["is invalid"]}}}`)
	case AbsurdHeaders:
		f.Header = http.Header{"X-Librato-Ratelimit-Std": {[]string{
			"limit=100,remaining=0,reset=99999999999",
			"limit=1,remaining=0,reset=4000000000",
			"limit=-5,remaining=-1,reset=-3",
			"limit=100,remaining=1,reset=86400000",
			"limit=abc,remaining=,reset=1e9",
		}[rng.IntN(5)]}}
	case LowBudget:
		f.Header = http.Header{"X-Librato-Ratelimit-Std": {fmt.Sprintf("limit=300,remaining=%d,reset=%d", rng.IntN(20), 1+rng.IntN(30))}}
	}
	return f
}

// echo is text in which a proxy repeats the credentials, in one of the
// forms a page might use.
func (p *Plan) echo(rng *rand.Rand) string {
	basic := base64.StdEncoding.EncodeToString([]byte(p.user + ":" + p.token))
	return []string{
		"Authorization: Basic " + basic,
		"user " + p.user + " token " + p.token,
		"user=" + url.QueryEscape(p.user),
		"token " + strings.ReplaceAll(p.token, "/", `\/`),
		"request from " + html.EscapeString(p.user),
	}[rng.IntN(5)]
}
