package libratoapi

import "testing"

// TestExponent10 moved here from internal/fakelibrato with the function.
func TestExponent10(t *testing.T) {
	tests := []struct {
		lit      string
		want     int
		wantZero bool
	}{
		{"1", 0, false}, {"-1", 0, false}, {"10", 1, false}, {"123.45", 2, false},
		{"0.01", -2, false}, {"0.000", 0, true}, {"0", 0, true}, {"-0.0e5", 0, true},
		{"1e126", 126, false}, {"9.99E126", 126, false}, {"10e126", 127, false},
		{"0.1e128", 127, false}, {"1.7976931348623157e308", 308, false},
		{"1e-131", -131, false}, {"1e+5", 5, false}, {"00012", 1, false},
		{"1e99999999999999999999", 1 << 30, false}, {"1e-99999999999999999999", -(1 << 30), false},
	}
	for _, tt := range tests {
		got, zero := exponent10([]byte(tt.lit))
		if zero != tt.wantZero || (!zero && got != tt.want) {
			t.Errorf("exponent10(%q) = %d,%v want %d,%v", tt.lit, got, zero, tt.want, tt.wantZero)
		}
	}
}
