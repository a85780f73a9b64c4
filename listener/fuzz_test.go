package listener

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzWrite posts arbitrary bodies to both write endpoints through the
// handler: it must never panic, must answer with one of Librato's statuses,
// and must hand metrics to Telegraf exactly when it answers 2xx.
//
//	go test -run '^$' -fuzz FuzzWrite ./listener
func FuzzWrite(f *testing.F) {
	files, err := filepath.Glob("testdata/golden/*.*")
	require.NoError(f, err)
	for _, file := range files {
		if strings.HasSuffix(file, ".metrics") {
			continue
		}
		b, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(strings.HasPrefix(filepath.Base(file), "tagged"), strings.HasSuffix(file, ".form"), b)
	}
	f.Add(false, false, []byte(`{"gauges":[{"name":"a","value":1e400}]}`))
	f.Add(true, false, []byte(`{"tags":{"a":"b"},"measurements":[{"name":"a","value":-0}]}`))

	acc := &ackAcc{discard: true}
	l := start(f, acc, func(l *Listener) { l.MaxBodySize = 64 << 10 })
	f.Fuzz(func(t *testing.T, tagged, form bool, body []byte) {
		path, ctype := legacyPath, "application/json"
		if tagged {
			path = taggedPath
		}
		if form {
			ctype = "application/x-www-form-urlencoded"
		}
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		before := groups(acc)
		rec := httptest.NewRecorder()
		l.ServeHTTP(rec, r)
		handed := groups(acc) - before
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted:
			require.Equal(t, 1, handed, "a 2xx hands over one group")
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			require.Equal(t, 0, handed, "a rejected request hands over nothing")
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
		}
	})
}

func groups(a *ackAcc) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.groups
}
