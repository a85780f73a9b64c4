package libratoapi

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The documented rules (librato-api.md §1, §2). The byte loops must agree
// with them on every input.
// They are quoted verbatim, so the redundant _ next to \w stays.
var (
	nameRe     = regexp.MustCompile(`\A[-.:_A-Za-z0-9]{1,255}\z`)
	tagKeyRe   = regexp.MustCompile(`\A[-.:_\w]{1,64}\z`)       //nolint:gocritic // verbatim from the docs
	tagValueRe = regexp.MustCompile(`\A[-.:_?\\/\w ]{1,255}\z`) //nolint:gocritic // verbatim from the docs
)

func sourceByRegexp(s string) bool { return nameRe.MatchString(s) && !strings.EqualFold(s, "all") }

func TestRules(t *testing.T) {
	tests := []struct {
		fn   func(string) bool
		name string
		in   string
		want bool
	}{
		{ValidName, "name", "cpu.user", true},
		{ValidName, "name", "a:b-c_d.E9", true},
		{ValidName, "name", strings.Repeat("n", 255), true},
		{ValidName, "name", strings.Repeat("n", 256), false},
		{ValidName, "name", "", false},
		{ValidName, "name", "a b", false},
		{ValidName, "name", "a/b", false},
		{ValidName, "name", "café", false},
		{ValidSource, "source", "web-1.example.com", true},
		{ValidSource, "source", "all", false},
		{ValidSource, "source", "ALL", false},
		{ValidSource, "source", "ally", true},
		{ValidSource, "source", strings.Repeat("s", 255), true},
		{ValidSource, "source", strings.Repeat("s", 256), false},
		{ValidSource, "source", "", false},
		{ValidTagKey, "tag key", "host_name", true},
		{ValidTagKey, "tag key", strings.Repeat("k", 64), true},
		{ValidTagKey, "tag key", strings.Repeat("k", 65), false},
		{ValidTagKey, "tag key", "a b", false},
		{ValidTagKey, "tag key", "a/b", false},
		{ValidTagValue, "tag value", `/a/b? c\d:e-f.g_h`, true},
		{ValidTagValue, "tag value", strings.Repeat("v", 255), true},
		{ValidTagValue, "tag value", strings.Repeat("v", 256), false},
		{ValidTagValue, "tag value", "", false},
		{ValidTagValue, "tag value", "b|c", false},
		{ValidTagValue, "tag value", "café", false},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("%s %.20q = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

// checkAgainstRegexps fails when a byte loop and its documented regexp
// disagree on s.
func checkAgainstRegexps(t *testing.T, s string) {
	t.Helper()
	for _, c := range []struct {
		name      string
		loop, doc func(string) bool
	}{
		{"ValidName", ValidName, nameRe.MatchString},
		{"ValidSource", ValidSource, sourceByRegexp},
		{"ValidTagKey", ValidTagKey, tagKeyRe.MatchString},
		{"ValidTagValue", ValidTagValue, tagValueRe.MatchString},
	} {
		if got, want := c.loop(s), c.doc(s); got != want {
			t.Fatalf("%s(%q) = %v, the regexp says %v", c.name, s, got, want)
		}
	}
}

// TestRulesAgreeWithRegexps draws strings from an alphabet that mixes
// allowed bytes, near misses and non-ASCII, at lengths around the limits.
func TestRulesAgreeWithRegexps(t *testing.T) {
	const alphabet = "aZ09-.:_?\\/ |#\t\"'\x00\xff\xc3\xa9é"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := r.IntN(8)
		if r.IntN(4) == 0 {
			n = 60 + r.IntN(200)
		}
		if r.IntN(8) == 0 {
			n = 250 + r.IntN(10)
		}
		var b strings.Builder
		for range n {
			if r.IntN(10) < 8 { // mostly valid bytes, so long strings can pass
				b.WriteByte("abcXYZ019-._:"[r.IntN(13)])
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		checkAgainstRegexps(t, b.String())
	}
	for _, s := range []string{"all", "All", "aLL", "\u212a", "a\nb", strings.Repeat("a", 64), strings.Repeat(" ", 5)} {
		checkAgainstRegexps(t, s)
	}
}

func FuzzRulesAgreeWithRegexps(f *testing.F) {
	for _, s := range []string{"cpu", "all", "a b", "/x?y\\z", strings.Repeat("k", 65), "é"} {
		f.Add(s)
	}
	f.Fuzz(checkAgainstRegexps)
}

func TestRulesDoNotAllocate(t *testing.T) {
	long := strings.Repeat("n", 255)
	allocs := testing.AllocsPerRun(100, func() {
		_ = ValidName(long) && ValidSource(long) && ValidTagKey("host") && ValidTagValue(long)
	})
	if allocs != 0 {
		t.Fatalf("rules allocate %v times per call", allocs)
	}
}

func BenchmarkValidName(b *testing.B) {
	name := "librato.listener.requests.total"
	for b.Loop() {
		if !ValidName(name) {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkValidNameRegexp(b *testing.B) {
	name := "librato.listener.requests.total"
	for b.Loop() {
		if !nameRe.MatchString(name) {
			b.Fatal("rejected")
		}
	}
}
