package testclock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEpochShift(t *testing.T) {
	cases := []struct {
		shift string
		want  time.Time
		bad   bool
	}{
		{"", base, false},
		{"87600h", base.Add(87600 * time.Hour), false},
		{"-1h", base.Add(-time.Hour), false},
		{"ten years", time.Time{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.shift, func(t *testing.T) {
			t.Setenv(EnvShift, tc.shift)
			if tc.bad {
				_, err := Shift()
				require.Error(t, err)
				require.Panics(t, func() { Epoch() })
				return
			}
			require.Equal(t, tc.want, Epoch())
		})
	}
}
