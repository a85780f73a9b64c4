package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"
)

// testLogger collects log lines as "E! text", "W! text", …
type testLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *testLogger) addf(level, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprintf(format, args...))
}

func (l *testLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (*testLogger) Level() telegraf.LogLevel            { return telegraf.Trace }
func (*testLogger) AddAttribute(string, any)            {}
func (l *testLogger) Errorf(format string, args ...any) { l.addf("E!", format, args...) }
func (l *testLogger) Error(args ...any)                 { l.addf("E!", "%s", fmt.Sprint(args...)) }
func (l *testLogger) Warnf(format string, args ...any)  { l.addf("W!", format, args...) }
func (l *testLogger) Warn(args ...any)                  { l.addf("W!", "%s", fmt.Sprint(args...)) }
func (l *testLogger) Infof(format string, args ...any)  { l.addf("I!", format, args...) }
func (l *testLogger) Info(args ...any)                  { l.addf("I!", "%s", fmt.Sprint(args...)) }
func (l *testLogger) Debugf(format string, args ...any) { l.addf("D!", format, args...) }
func (l *testLogger) Debug(args ...any)                 { l.addf("D!", "%s", fmt.Sprint(args...)) }
func (l *testLogger) Tracef(format string, args ...any) { l.addf("T!", format, args...) }
func (l *testLogger) Trace(args ...any)                 { l.addf("T!", "%s", fmt.Sprint(args...)) }
func (l *testLogger) count(prefix string) (n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

func mustOpen(t *testing.T, dir string, opts spoolOptions, log *testLogger) (*spool, spoolStats) {
	t.Helper()
	sp, st, err := openSpool(dir, opts, log)
	require.NoError(t, err, "log:\n%s", log)
	return sp, st
}

func payloads(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "m,host=h v=%06di %d\n", from+i, 1_700_000_000+from+i) // fixed width
	}
	return out
}

func readAll(t *testing.T, sp *spool) []spooled {
	t.Helper()
	var out []spooled
	for {
		recs, err := sp.read(7) // small reads: position handling across calls
		require.NoError(t, err)
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
}

// requireRecords checks recs are want[i] with consecutive sequence numbers
// from seq.
func requireRecords(t *testing.T, recs []spooled, seq uint64, want [][]byte) {
	t.Helper()
	require.Len(t, recs, len(want))
	for i, r := range recs {
		require.Equal(t, seq+uint64(i), r.seq, "record %d", i)
		require.Equal(t, string(want[i]), string(r.payload), "record %d", i)
	}
}

// crash releases the spool as a kill -9 would: nothing saved, files and
// lock released by the kernel.
func crash(t *testing.T, sp *spool) {
	t.Helper()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, f := range []*os.File{sp.active, sp.rdFile} {
		if f != nil {
			require.NoError(t, f.Close())
		}
	}
	sp.closed = true
	require.NoError(t, sp.unlock())
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	require.NoError(t, err)
	return m
}

func TestSpoolAppendReplayTruncate(t *testing.T) {
	dir, log := t.TempDir(), &testLogger{}
	opts := spoolOptions{maxSize: 1 << 20, segmentSize: 200} // a few records per segment
	sp, st := mustOpen(t, dir, opts, log)
	require.Zero(t, st.unsettled)
	want := payloads(0, 30)
	require.NoError(t, sp.append(want[:10])) // a batch goes into one segment
	for i := 10; i < 30; i++ {
		require.NoError(t, sp.append(want[i:i+1]))
	}
	requireRecords(t, readAll(t, sp), 0, want)
	require.Greater(t, len(segments(t, dir)), 3)

	// Settle the first 12: whole segments below that go, the rest is
	// replayed after a clean close.
	require.NoError(t, sp.advance(12))
	segs := segments(t, dir) // sorted by name, that is by base
	require.Greater(t, len(segs), 1)
	require.LessOrEqual(t, baseOf(t, segs[0]), uint64(12))
	require.Greater(t, baseOf(t, segs[1]), uint64(12), "segments wholly below the head are removed")
	require.NoError(t, sp.close(12))
	require.Equal(t, "12\n", string(must(os.ReadFile(filepath.Join(dir, headFile)))))

	sp, st = mustOpen(t, dir, opts, log)
	require.Equal(t, 18, st.unsettled)
	requireRecords(t, readAll(t, sp), 12, want[12:])
	// New records continue the numbering.
	require.NoError(t, sp.append(payloads(30, 2)))
	requireRecords(t, readAll(t, sp), 30, payloads(30, 2))
	// Everything settled: no segment is left.
	require.NoError(t, sp.close(32))
	require.Empty(t, segments(t, dir))
	sp, st = mustOpen(t, dir, opts, log)
	require.Zero(t, st.unsettled)
	require.NoError(t, sp.append(payloads(32, 1)))
	requireRecords(t, readAll(t, sp), 32, payloads(32, 1))
	require.NoError(t, sp.close(32))
	require.Zero(t, log.count("E!"), log)
	require.Zero(t, log.count("W!"), log)
}

func baseOf(t *testing.T, path string) uint64 {
	t.Helper()
	var base uint64
	_, err := fmt.Sscanf(filepath.Base(path), "%d", &base)
	require.NoError(t, err)
	return base
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A crash before the head was saved replays records already settled
// (duplicates), never fewer.
func TestSpoolCrashReplaysFromLastSavedHead(t *testing.T) {
	dir, log := t.TempDir(), &testLogger{}
	opts := spoolOptions{maxSize: 1 << 20}
	sp, _ := mustOpen(t, dir, opts, log)
	want := payloads(0, 20)
	require.NoError(t, sp.append(want))
	require.Len(t, readAll(t, sp), 20)
	require.NoError(t, sp.advance(5))
	crash(t, sp) // records 5..19 were handed out, some maybe delivered: unknown

	sp, st := mustOpen(t, dir, opts, log)
	require.Equal(t, 15, st.unsettled)
	requireRecords(t, readAll(t, sp), 5, want[5:])
	require.NoError(t, sp.close(5))
}

// TestSpoolTornLastRecord models kill -9 (or a power cut) during an append:
// the last segment ends in part of a record, or in bytes that were never
// written. The spool keeps every record before it, cuts the rest, and
// appends after it.
func TestSpoolTornLastRecord(t *testing.T) {
	full := appendRecord(nil, []byte("m,host=h v=99i 1700000099\n"))
	cases := []struct {
		name string
		tail []byte
		warn string
		err  string
	}{
		{"header cut", full[:5], "cut off by a crash", ""},
		{"payload cut", full[:len(full)-3], "cut off by a crash", ""},
		{"zeros (length 0, bad checksum)", make([]byte, 12), "", "checksum mismatch"},
		{"bit flip in payload", flip(full, len(full)-1), "", "checksum mismatch"},
		{"absurd length", append([]byte{0xff, 0xff, 0xff, 0xff}, full[4:]...), "", "over the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, log := t.TempDir(), &testLogger{}
			opts := spoolOptions{maxSize: 1 << 20}
			sp, _ := mustOpen(t, dir, opts, log)
			want := payloads(0, 3)
			require.NoError(t, sp.append(want))
			crash(t, sp)
			segs := segments(t, dir)
			require.Len(t, segs, 1)
			before := must(os.Stat(segs[0])).Size()
			f := must(os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0))
			_, err := f.Write(tc.tail)
			require.NoError(t, err)
			require.NoError(t, f.Close())

			sp, st := mustOpen(t, dir, opts, log)
			require.Equal(t, 3, st.unsettled)
			require.Equal(t, before, must(os.Stat(segs[0])).Size(), "cut back to the whole records")
			if tc.warn != "" {
				require.Contains(t, log.String(), tc.warn)
				require.Equal(t, int64(len(tc.tail)), st.cut)
			} else {
				require.Contains(t, log.String(), tc.err)
				require.Equal(t, int64(len(tc.tail)), st.damaged)
			}
			require.NoError(t, sp.append(payloads(3, 2)))
			requireRecords(t, readAll(t, sp), 0, append(want, payloads(3, 2)...))
			require.NoError(t, sp.close(0))

			sp, st = mustOpen(t, dir, opts, &testLogger{})
			require.Equal(t, 5, st.unsettled)
			require.Zero(t, st.cut+st.damaged)
			require.NoError(t, sp.close(0))
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}

// Damage in an older segment loses the records after it in that segment
// (with an error), not the later segments.
func TestSpoolDamagedOlderSegment(t *testing.T) {
	dir, log := t.TempDir(), &testLogger{}
	opts := spoolOptions{maxSize: 1 << 20, segmentSize: 1}
	sp, _ := mustOpen(t, dir, opts, log)
	want := payloads(0, 3)
	for _, p := range want {
		require.NoError(t, sp.append([][]byte{p})) // one record per segment
	}
	crash(t, sp)
	segs := segments(t, dir)
	require.Len(t, segs, 3)
	b := must(os.ReadFile(segs[1]))
	require.NoError(t, os.WriteFile(segs[1], flip(b, len(b)-2), 0o600))

	sp, st := mustOpen(t, dir, opts, log)
	require.Equal(t, 2, st.unsettled)
	require.Equal(t, 1, st.damagedSegs)
	require.Contains(t, log.String(), "E! Spool")
	recs := readAll(t, sp)
	require.Len(t, recs, 2)
	require.Equal(t, []uint64{0, 2}, []uint64{recs[0].seq, recs[1].seq})
	require.NoError(t, sp.close(3))
}

func TestSpoolBrokenHeadResendsAll(t *testing.T) {
	dir, log := t.TempDir(), &testLogger{}
	opts := spoolOptions{maxSize: 1 << 20}
	sp, _ := mustOpen(t, dir, opts, log)
	require.NoError(t, sp.append(payloads(0, 4)))
	require.NoError(t, sp.close(2))
	require.NoError(t, os.WriteFile(filepath.Join(dir, headFile), []byte("garbage"), 0o600))

	sp, st := mustOpen(t, dir, opts, log)
	require.True(t, st.headWasBroken)
	require.Equal(t, 4, st.unsettled, "duplicates rather than loss")
	require.Contains(t, log.String(), "W! Spool")
	require.NoError(t, sp.close(0))
}

// TestSpoolFullDropsOldest: the spool stays within its size; the oldest
// records go first, counted in a warning that tells records never sent from
// those still in the agent's memory.
func TestSpoolFullDropsOldest(t *testing.T) {
	dir, log := t.TempDir(), &testLogger{}
	rec := len(appendRecord(nil, payloads(0, 1)[0]))
	opts := spoolOptions{maxSize: int64(20 * rec), segmentSize: int64(5 * rec)}
	sp, _ := mustOpen(t, dir, opts, log)
	for i := range 20 {
		require.NoError(t, sp.append(payloads(i, 1)))
	}
	require.Zero(t, log.count("W!"), log)
	// Hand out the first 3 (as if in the agent's buffer).
	recs, err := sp.read(3)
	require.NoError(t, err)
	require.Len(t, recs, 3)

	// 20 records fill it; one more drops the oldest segment (records 0..4:
	// 0..2 handed out, 3..4 never sent).
	require.NoError(t, sp.append(payloads(20, 1)))
	require.LessOrEqual(t, sp.bytes(), opts.maxSize)
	require.Contains(t, log.String(), "dropped the oldest 5 metric(s) not yet delivered (2 never sent and lost, 3 now only in memory)")
	requireRecords(t, readAll(t, sp), 5, payloads(5, 16))

	// Much more than fits: only the newest remain, within the bound.
	for i := 21; i < 200; i++ {
		require.NoError(t, sp.append(payloads(i, 1)))
		require.LessOrEqual(t, sp.bytes(), opts.maxSize+int64(rec))
	}
	recs = readAll(t, sp)
	require.NotEmpty(t, recs)
	require.Equal(t, uint64(199), recs[len(recs)-1].seq)
	require.GreaterOrEqual(t, len(recs), 15)
	require.NoError(t, sp.close(recs[0].seq))

	// A restart sees the same bound.
	sp, st := mustOpen(t, dir, opts, log)
	require.Equal(t, len(recs), st.unsettled)
	require.LessOrEqual(t, st.bytes, opts.maxSize)
	require.NoError(t, sp.close(0))
}

func TestSpoolOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, spoolOptions{maxSize: 1 << 20}, &testLogger{})
	_, _, err := openSpool(dir, spoolOptions{maxSize: 1 << 20}, &testLogger{})
	require.ErrorContains(t, err, "another librato-execd is using it")
	require.NoError(t, sp.close(0))
	sp, _ = mustOpen(t, dir, spoolOptions{maxSize: 1 << 20}, &testLogger{})
	require.NoError(t, sp.close(0))
}

// A record larger than one read chunk is read whole.
func TestSpoolLargeRecord(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, spoolOptions{maxSize: 64 << 20}, &testLogger{})
	big := bytes.Repeat([]byte("x"), 3*readChunk/2)
	want := [][]byte{[]byte("a"), big, []byte("b")}
	require.NoError(t, sp.append(want))
	requireRecords(t, readAll(t, sp), 0, want)
	require.NoError(t, sp.close(3))
}

func TestSpoolDirOf(t *testing.T) {
	cases := []struct {
		name, flag, state, want string
	}{
		{"nothing", "", "", ""},
		{"flag", "/var/spool/x", "/var/lib/telegraf", "/var/spool/x"},
		{"off beats systemd", spoolOff, "/var/lib/telegraf", ""},
		{"systemd", "", "/var/lib/telegraf", "/var/lib/telegraf/librato-execd/librato"},
		{"systemd, several", "", "/var/lib/a:/var/lib/b", "/var/lib/a/librato-execd/librato"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := options{configPath: "/etc/telegraf/librato.conf", spoolDir: tc.flag}
			require.Equal(t, tc.want, spoolDirOf(o, tc.state))
		})
	}
}

func TestDecodeRecordRoundTrip(t *testing.T) {
	for _, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0}, 1000)} {
		b := appendRecord(nil, p)
		got, n, err := decodeRecord(append(b, 1, 2, 3))
		require.NoError(t, err)
		require.Equal(t, len(b), n)
		require.Equal(t, string(p), string(got))
		for cut := range len(b) {
			_, _, err := decodeRecord(b[:cut])
			require.ErrorIs(t, err, errTornRecord, "cut at %d", cut)
		}
	}
}

// FuzzDecodeRecord: no input panics, and whatever decodes is exactly the
// framing of its payload.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, []byte("cpu,host=a v=1 1\n")))
	f.Add(appendRecord(appendRecord(nil, []byte("a")), []byte("b")))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 'x'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		off := 0
		for off < len(b) {
			payload, n, err := decodeRecord(b[off:])
			if err != nil {
				if n != 0 || payload != nil {
					t.Fatalf("error %v with n=%d", err, n)
				}
				return
			}
			if n < recordHeader || off+n > len(b) {
				t.Fatalf("n=%d out of range at %d of %d", n, off, len(b))
			}
			if !bytes.Equal(appendRecord(nil, payload), b[off:off+n]) {
				t.Fatalf("record at %d does not re-encode to its bytes", off)
			}
			off += n
		}
	})
}

// FuzzSpoolOpen: whatever a crash or a disk leaves in the last segment, a
// start neither panics nor fails; it keeps a run of whole records, and
// appends and reads work after it.
func FuzzSpoolOpen(f *testing.F) {
	f.Add(appendRecord(appendRecord(nil, []byte("a")), []byte("bc")))
	f.Add(appendRecord(nil, []byte("cpu v=1 1\n"))[:5])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 7, segmentSuffix)), data, 0o600))
		sp, st, err := openSpool(dir, spoolOptions{maxSize: 1 << 20}, &testLogger{})
		require.NoError(t, err)
		recs := readAll(t, sp)
		require.Len(t, recs, st.unsettled)
		for i, r := range recs {
			require.Equal(t, uint64(7+i), r.seq)
		}
		require.NoError(t, sp.append([][]byte{[]byte("new")}))
		more := readAll(t, sp)
		require.Len(t, more, 1)
		require.Equal(t, uint64(7+len(recs)), more[0].seq)
		require.Equal(t, "new", string(more[0].payload))
		require.NoError(t, sp.close(0))
	})
}
