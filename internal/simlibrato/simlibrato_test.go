package simlibrato

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

const (
	user  = "ops@example.com"
	token = "t0ken"
	host  = "api.librato.test"
)

func post(ctx context.Context, t *testing.T, s *Server, path, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+token)))
	return s.RoundTrip(req)
}

func TestLibratoAnswers(t *testing.T) {
	// Each case runs in a bubble, whose clock starts here: the
	// request_time of a "too far in the past" answer is known.
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	old := now - 3*3600
	tests := []struct {
		name   string
		rules  Rules
		path   string
		body   string
		status int
		answer string
		stored int
	}{
		{"legacy array", Rules{}, LegacyPath, `{"gauges":[{"name":"a","source":"s","value":1,"measure_time":` + itoa(now) + `}]}`,
			200, "", 1},
		{"legacy by name, top-level defaults", Rules{}, LegacyPath, `{"source":"s","measure_time":` + itoa(now) +
			`,"gauges":{"a":{"value":1},"b":{"value":2}}}`, 200, "", 2},
		{"legacy too old rejects the request", Rules{PastWindow: time.Hour}, LegacyPath,
			`{"gauges":[{"name":"a","source":"s","value":1,"measure_time":` + itoa(now) + `},{"name":"b","source":"s","value":2,"measure_time":` +
				itoa(old) + `}]}`, 400, `{"errors":{"params":{"measure_time":["is too far in the past"],"name":"b"}},"request_time":` + itoa(now) + `}`, 0},
		{"unknown name rule", Rules{MaxNameLen: 40}, LegacyPath,
			`{"gauges":[{"name":"` + strings.Repeat("n", 41) + `","source":"s","value":1}]}`, 400, `{"errors":{"params":{"name":["is too long"]}}}`, 0},
		{"quirk source", Rules{QuirkSources: true}, LegacyPath, `{"gauges":[{"name":"a","source":"1.1","value":1}]}`,
			400, `{"errors":{"params":{"name":"a","source":["1.1 is not a valid source name"]}}}`, 0},
		{"tagged not enabled", Rules{}, TaggedPath, `{"tags":{"h":"x"},"measurements":[{"name":"a","value":1}]}`, 403,
			`{"errors":["Tag based measurements are not enabled for this account. Please contact support."]}`, 0},
		{"tagged strict schema", Rules{TaggedEnabled: true}, TaggedPath, `{"source":"x","measurements":[{"name":"a","value":1}]}`,
			400, `{"code":400,"message":"Unable to process JSON"}`, 0},
		{"tagged own tags replace the top level's", Rules{TaggedEnabled: true}, TaggedPath,
			`{"tags":{"h":"x"},"measurements":[{"name":"a","value":1,"tags":{"z":"y"}}]}`, 202,
			`{"measurements":{"summary":{"total":1,"accepted":1,"failed":0,"filtered":0}}}`, 1},
		{"tagged partial", Rules{TaggedEnabled: true, TaggedPartial: true, MaxNameLen: 40}, TaggedPath,
			`{"tags":{"h":"x"},"measurements":[{"name":"a","value":1},{"name":"` + strings.Repeat("n", 41) + `","value":2}]}`, 202,
			`{"measurements":{"summary":{"total":2,"accepted":1,"failed":1,"filtered":0}}}`, 1},
		{"legacy empty", Rules{}, LegacyPath, `{"gauges":[]}`, 400,
			`{"errors":{"params":{"gauges":["must have at least one measurement"]}}}`, 0},
		{"legacy unparsable", Rules{}, LegacyPath, `{"gauges":`, 400, `{"errors":{"request":["The JSON could not be parsed"]}}`, 0},
		{"tagged without tags", Rules{TaggedEnabled: true}, TaggedPath, `{"measurements":[{"name":"a","value":1}]}`, 400,
			`{"errors":{"name":"a","params":{"tags":["are required"]}}}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(Config{Host: host, User: user, Token: token, Rules: tt.rules})
				resp, err := post(context.Background(), t, s, tt.path, tt.body)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.status || string(body) != tt.answer {
					t.Errorf("answered %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.answer)
				}
				op := s.History()[0]
				if len(op.Stored) != tt.stored || !op.Complete {
					t.Errorf("stored %v (complete %v), want %d stored and the answer read", op.Stored, op.Complete, tt.stored)
				}
			})
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFaults(t *testing.T) {
	body := `{"gauges":[{"name":"a","source":"s","value":1}]}`
	tests := []struct {
		name     string
		fault    Fault
		wantErr  error
		stored   int
		complete bool
	}{
		{"reset before", Fault{Kind: ResetBefore}, syscall.ECONNRESET, 0, false},
		{"reset after: a lost acknowledgement", Fault{Kind: ResetAfter}, syscall.ECONNRESET, 1, false},
		{"cut body", Fault{Kind: CutBody}, syscall.ECONNRESET, 1, false},
		{"hang before the headers, stored", Fault{Kind: HangHeaders, Store: StoreValid}, context.DeadlineExceeded, 1, false},
		{"hanging body", Fault{Kind: HangBody}, context.DeadlineExceeded, 1, false},
		{"503 after storing", Fault{Kind: Answer, Status: 503, Store: StoreValid}, nil, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(Config{Host: host, User: user, Token: token, Plan: func(*Request) Fault { return tt.fault }})
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				resp, err := post(ctx, t, s, LegacyPath, body)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				op := s.History()[0]
				if len(op.Stored) != tt.stored || op.Complete != tt.complete {
					t.Errorf("stored %v complete %v, want %d stored, complete %v", op.Stored, op.Complete, tt.stored, tt.complete)
				}
			})
		})
	}
}

func TestPlanIsAFunctionOfItsInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var kinds [2][]string
		for i := range kinds {
			rng := rand.New(rand.NewPCG(42, 0))
			p := NewPlan(rng, time.Now(), time.Minute, user, token)
			for step := range 200 {
				f := p.Fault(&Request{Time: time.Now().Add(time.Duration(step) * 300 * time.Millisecond),
					Body: []byte{byte(step)}, Size: step * 10, Tagged: step%2 == 0})
				kinds[i] = append(kinds[i], f.Label)
			}
		}
		if !slices.Equal(kinds[0], kinds[1]) {
			t.Error("the same seed and requests drew different faults")
		}
	})
}

func TestQuirkSource(t *testing.T) {
	for s, want := range map[string]bool{"1.1": true, "10.25": true, "1.": false, ".1": false, "1..1": false,
		"1.1.1": false, "1": false, "a.1": false, "": false} {
		if got := quirkSource(s); got != want {
			t.Errorf("quirkSource(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValid(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old := now.Add(-2 * time.Hour).Unix()
	tests := []struct {
		name   string
		rules  Rules
		m      Measurement
		tagged bool
		want   bool
	}{
		{"legacy", Rules{}, Measurement{Name: "a", Source: "s", Value: 1}, false, true},
		{"legacy bad name", Rules{}, Measurement{Name: "a b", Value: 1}, false, false},
		{"legacy source all", Rules{}, Measurement{Name: "a", Source: "ALL", Value: 1}, false, false},
		{"quirk source", Rules{QuirkSources: true}, Measurement{Name: "a", Source: "1.1", Value: 1}, false, false},
		{"short names", Rules{MaxNameLen: 3}, Measurement{Name: "abcd", Value: 1}, false, false},
		{"too old", Rules{PastWindow: time.Hour}, Measurement{Name: "a", Time: old, Value: 1}, false, false},
		{"complex", Rules{}, Measurement{Name: "a", Count: 2, Sum: 3}, false, true},
		{"tagged", Rules{}, Measurement{Name: "a", Tags: "h=x,z=y", Value: 1}, true, true},
		{"tagged without tags", Rules{}, Measurement{Name: "a", Value: 1}, true, false},
		{"tagged ignores sources", Rules{QuirkSources: true}, Measurement{Name: "a", Source: "1.1", Tags: "h=x", Value: 1}, true, true},
	}
	for _, tt := range tests {
		if got := tt.rules.Valid(&tt.m, tt.tagged, now); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
}
