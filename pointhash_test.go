package librato

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNameHashSpreads: distinct names of every length up to 40 bytes,
// including ones that differ in a single byte anywhere, never share a hash.
func TestNameHashSpreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[uint64]string{}
	add := func(s string) {
		h := nameHash(42, s)
		if other, ok := seen[h]; ok && other != s {
			t.Fatalf("%q and %q share hash %x", other, s, h)
		}
		seen[h] = s
	}
	for n := range 41 {
		base := []byte(strings.Repeat("x", n))
		add(string(base))
		for i := range n {
			for _, c := range []byte("ay.-_0") {
				b := append([]byte(nil), base...)
				b[i] = c
				add(string(b))
			}
		}
		for range 2000 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			add(string(b))
		}
	}
	for i := range 30_000 {
		add(fmt.Sprintf("m%d", i))
		add(fmt.Sprintf("cpu.usage_%d", i))
	}
}

func TestNameMemo(t *testing.T) {
	m := newNameMemo(7)
	a := "disk.used"
	b := strings.Clone(a) // equal text, other bytes
	require.Same(t, m.get(a), m.get(b), "names go by their text")
	first := m.get(a)
	require.Same(t, first, m.get(a), "a name is made once and then reused")
	require.NotSame(t, m.get("disk.free"), m.get(a))
	require.Equal(t, m.get("disk.free").prefix, m.get(a).prefix, "one prefix per measurement")
	require.NotEqual(t, m.get("diskio.reads").prefix, m.get(a).prefix)
	require.Equal(t, m.get("disk").prefix, m.get(a).prefix)
	require.Same(t, m.get(""), m.get(a[:0]))

	old := m.get(a)
	for i := range 2 * maxCanonNames {
		m.get(fmt.Sprint("n", i))
		require.LessOrEqual(t, len(m.canon), maxCanonNames)
	}
	require.NotSame(t, old, m.get(a), "started over")
	require.Equal(t, old.hash, m.get(a).hash)
}

func TestSeriesMemoFollowsTheAPI(t *testing.T) {
	m := seriesMemo{seed: maphash.MakeSeed()}
	s := &series{Source: "web", Tags: `{"host":"web"}`}
	legacy, tagged := m.hash(s, false), m.hash(s, true)
	require.NotEqual(t, legacy, tagged)
	require.Equal(t, legacy, m.hash(&series{Source: "web", Tags: `{"host":"other"}`}, false))
	require.Equal(t, legacy, m.hash(s, false))
}
