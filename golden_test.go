package librato

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden runs every case folder of testdata/golden: input.lp goes through
// an [[outputs.librato]] block made of plugin.toml, loaded by Telegraf's own
// config loader, and the request bodies must equal expected.jsonl (one body a
// line, sorted, since requests are sent concurrently).
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(dir, "input.lp"))
			require.NoError(t, err)
			settings, err := os.ReadFile(filepath.Join(dir, "plugin.toml"))
			require.NoError(t, err)

			srv := newCaptureServer(t)
			out := loadOutput(t, srv.URL, string(settings))
			require.NoError(t, out.Output.Write(parseLP(t, string(input))))

			bodies := srv.Bodies()
			lines := make([]string, 0, len(bodies))
			for _, b := range bodies {
				require.NotContains(t, string(b), testToken)
				lines = append(lines, string(b))
			}
			slices.Sort(lines)
			got := strings.Join(lines, "\n") + "\n"

			expectedFile := filepath.Join(dir, "expected.jsonl")
			if *update {
				require.NoError(t, os.WriteFile(expectedFile, []byte(got), 0o640))
			}
			expected, err := os.ReadFile(expectedFile)
			require.NoError(t, err)
			require.Equal(t, string(expected), got)
			requireAcceptedByFake(t, lines)
		})
	}
}

// requireAcceptedByFake posts golden bodies to the fake API, which enforces
// Librato's documented rules: a golden file must never pin an invalid body.
func requireAcceptedByFake(t *testing.T, bodies []string) {
	t.Helper()
	fake := newFake(t, fakelibrato.Options{})
	for _, body := range bodies {
		url := fake.LegacyURL()
		if strings.HasPrefix(body, `{"tags"`) {
			url = fake.TaggedURL()
		}
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.SetBasicAuth(testUser, testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		answer, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Less(t, resp.StatusCode, 300, "Librato would reject %s: %s", body, answer)
	}
}

// loadOutput builds the plugin from TOML the way the agent does.
func loadOutput(t testing.TB, url, settings string) *models.RunningOutput {
	t.Helper()
	var conf bytes.Buffer
	fmt.Fprintf(&conf, "[[outputs.librato]]\n  api_url = %q\n  api_user = %q\n  api_token = %q\n%s\n", url, testUser, testToken, settings)
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData(conf.Bytes(), config.EmptySourcePath))
	require.Len(t, c.Outputs, 1)
	out := c.Outputs[0]
	require.IsType(t, &Librato{}, out.Output, "outputs.librato must be this plugin")
	out.Output.(*Librato).Log = testutil.Logger{Quiet: true}
	require.NoError(t, out.Init())
	require.NoError(t, out.Connect())
	t.Cleanup(out.Close)
	return out
}
