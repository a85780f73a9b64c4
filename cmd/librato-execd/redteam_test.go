package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedTeamDamagedRecordWedgesTheReader: a record damaged on disk while
// the process runs (a flipped bit, a stray write) made every later read fail
// at it: read returned the same error for ever, so nothing spooled after it
// was ever delivered, until the spool filled up and dropped it with up to a
// 16th of the spool, or a restart cut the segment there. Start-up already
// treats such a record as lost ("the bytes from there on are lost");
// running, the reader must get past it too: what is spooled after the
// damage was met is delivered.
func TestRedTeamDamagedRecordWedgesTheReader(t *testing.T) {
	dir := t.TempDir()
	log := &testLogger{}
	sp, _ := mustOpen(t, dir, spoolOptions{maxSize: 1 << 20}, log)
	defer func() { _ = sp.close(0) }()
	require.NoError(t, sp.append(payloads(0, 3)))
	// Flip a byte of the second record's payload on disk.
	segs := segments(t, dir)
	require.Len(t, segs, 1)
	data, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	rec := len(data) / 3
	require.NoError(t, os.WriteFile(segs[0], flip(data, rec+recordHeader+2), 0o600))
	var got []string
	recs, _ := sp.read(10) // meets the damage
	for _, r := range recs {
		got = append(got, string(r.payload))
	}
	require.NoError(t, sp.append(payloads(3, 2))) // spooled after the damage was met
	for range 5 {
		recs, _ := sp.read(10)
		for _, r := range recs {
			got = append(got, string(r.payload))
		}
	}
	want := payloads(3, 2)
	require.Contains(t, got, string(want[0]), "records spooled after the damaged one are read; got %q", got)
	require.Contains(t, got, string(want[1]))
}
