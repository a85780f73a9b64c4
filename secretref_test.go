package librato

import (
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"
	"github.com/stretchr/testify/require"
)

func TestUnsetEnvVars(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"s3cr3t-t0ken", nil},
		{"${LIBRATO_TOKEN}", []string{"LIBRATO_TOKEN"}},
		{"pre-${A}-mid-${B_2}", []string{"A", "B_2"}},
		// Telegraf substitutes $NAME too, but a literal "$" followed by
		// letters is a plausible password; only the braced form is certain.
		{"$LIBRATO_TOKEN", nil},
		{"${}", nil},
		{"${not a name}", nil},
		{"$5{x}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			require.Equal(t, tt.want, unsetEnvVars([]byte(tt.value)))
		})
	}
}

// TestInitRejectsUnresolvedSecrets goes through Telegraf's own loader: it
// leaves ${VAR} in the value when VAR is unset and @{store:key} unlinked
// when there is no such store, and Init must refuse both, naming the
// reference and never a value.
func TestInitRejectsUnresolvedSecrets(t *testing.T) {
	const setToken = "t0ken-from-the-environment"
	tests := []struct {
		name      string
		user      string
		token     string
		env       map[string]string
		wantErr   []string // substrings of the Init error; none: Init succeeds
		wantToken string   // with no error: the token the plugin holds
	}{
		{
			name:  "unset variable in the token",
			user:  testUser,
			token: "${LIBRATO_TEST_UNSET_TOKEN}",
			// Neutral: -check runs from a shell, not in Telegraf's environment.
			wantErr: []string{"api_token", "LIBRATO_TEST_UNSET_TOKEN", "which is not set in the environment:", "for -check"},
		},
		{
			name:    "unset variable in the user",
			user:    "${LIBRATO_TEST_UNSET_USER}",
			token:   testToken,
			wantErr: []string{"api_user", "LIBRATO_TEST_UNSET_USER"},
		},
		{
			name:    "one of two variables unset",
			user:    testUser,
			token:   "${LIBRATO_TEST_SET}${LIBRATO_TEST_UNSET_TOKEN}",
			env:     map[string]string{"LIBRATO_TEST_SET": setToken},
			wantErr: []string{"api_token", "LIBRATO_TEST_UNSET_TOKEN"},
		},
		{
			name:    "secret store that nothing links",
			user:    testUser,
			token:   "@{vault:librato_token}",
			wantErr: []string{"api_token", "@{vault:librato_token}", "secret store"},
		},
		{
			name:      "set variable",
			user:      testUser,
			token:     "${LIBRATO_TEST_SET}",
			env:       map[string]string{"LIBRATO_TEST_SET": setToken},
			wantToken: setToken,
		},
		{
			name:      "literal dollar sign",
			user:      testUser,
			token:     "pa$$word",
			wantToken: "pa$word", // the loader's $$ escape
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			conf := "[[outputs.librato]]\n  api_user = \"" + tt.user + "\"\n  api_token = \"" + tt.token + "\"\n"
			c := config.NewConfig()
			require.NoError(t, c.LoadConfigData([]byte(conf), config.EmptySourcePath))
			require.Len(t, c.Outputs, 1)
			ro := c.Outputs[0]
			err := ro.Init()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				require.Equal(t, tt.wantToken, secretString(t, &ro.Output.(*Librato).APIToken))
				return
			}
			require.Error(t, err)
			for _, s := range tt.wantErr {
				require.ErrorContains(t, err, s)
			}
			require.NotContains(t, err.Error(), setToken)
			require.NotContains(t, err.Error(), testToken)
		})
	}
}

// TestLoaderKeepsUnsetVariableLiterally pins the Telegraf behaviour the
// check relies on: without it, the literal "${VAR}" becomes the password.
func TestLoaderKeepsUnsetVariableLiterally(t *testing.T) {
	c := config.NewConfig()
	conf := "[[outputs.librato]]\n  api_user = \"u@example.com\"\n  api_token = \"${LIBRATO_TEST_UNSET_TOKEN}\"\n"
	require.NoError(t, c.LoadConfigData([]byte(conf), config.EmptySourcePath))
	l := outputOf(t, c.Outputs)
	require.Equal(t, "${LIBRATO_TEST_UNSET_TOKEN}", secretString(t, &l.APIToken))
}

func outputOf(t *testing.T, outs []*models.RunningOutput) *Librato {
	t.Helper()
	require.Len(t, outs, 1)
	l, ok := outs[0].Output.(*Librato)
	require.True(t, ok)
	return l
}

func secretString(t *testing.T, s *config.Secret) string {
	t.Helper()
	buf, err := s.Get()
	require.NoError(t, err)
	defer buf.Destroy()
	return buf.String()
}
