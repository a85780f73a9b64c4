package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/influxdata/telegraf"
)

// The spool keeps every metric read from stdin on disk until the plugin's
// Write returned nil for it, so that a restart (or kill -9, up to the last
// fsync) during an outage loses nothing: Telegraf's outputs.execd counts a
// metric delivered once it is written to our stdin and will not send it
// again.
//
// Layout of the spool directory:
//
//	<base>.seg  segment files named by the sequence number of their first
//	            record (20 digits), each a run of records (spool_record.go);
//	            the last one is appended to, older ones are read-only
//	head        the lowest sequence number not yet settled, written
//	            atomically (temp file, fsync, rename) after each flush
//	lock        held with flock while a process uses the directory
//
// Records are numbered consecutively: record i of a segment has sequence
// number base+i. Appends are fsynced per batch before anything reads them.
// Segments wholly below head are deleted. A head that was not yet saved
// when the process died only makes the next start send some settled
// records again (duplicates, never loss).

const (
	segmentSuffix = ".seg"
	headFile      = "head"
	lockFile      = "lock"

	// Segment size bounds: a 16th of the spool's size, so that dropping the
	// oldest segment when full drops little, within limits that keep the
	// file count and a segment's scan at start-up small.
	minSegmentSize = 64 << 10
	maxSegmentSize = 16 << 20

	// readChunk is how much of a segment one read takes at a time.
	readChunk = 1 << 20
)

var errSpoolClosed = errors.New("spool closed")

// spoolOptions are the spool's limits.
type spoolOptions struct {
	// maxSize bounds the bytes of all segment files; when an append would
	// exceed it, the oldest segments are dropped (see append).
	maxSize int64
	// segmentSize: a new segment starts once the active one reaches it
	// (0: maxSize/16 within minSegmentSize and maxSegmentSize).
	segmentSize int64
}

// segment is one segment file; size and count cover only synced records.
type segment struct {
	base, count uint64
	size        int64
	path        string
}

func (s *segment) end() uint64 { return s.base + s.count }

// spooled is one record read back.
type spooled struct {
	seq     uint64
	payload []byte
}

// spoolStats are the counts at open.
type spoolStats struct {
	unsettled     int // records to deliver before new input
	bytes         int64
	cut, damaged  int64 // bytes removed: a torn last record, damaged records
	damagedSegs   int
	headWasBroken bool
}

// spool is safe for one appender and one reader at a time (the reader also
// advances the head); the mutex serialises them with each other and close.
type spool struct {
	dir    string
	opts   spoolOptions
	log    telegraf.Logger
	unlock func() error

	mu        sync.Mutex
	closed    bool
	segs      []*segment // ascending base; the last one is appended to
	active    *os.File   // the last segment, open for append; nil until needed
	size      int64
	next      uint64 // sequence number of the next appended record
	head      uint64 // records below it are settled
	savedHead uint64 // head as on disk
	dropped   uint64 // records dropped because the spool was full, in total
	scratch   []byte

	// The read position: the next record to hand out is rdSeq; rdBase and
	// rdOff locate it when rdBase is still the segment holding it.
	rdSeq    uint64
	rdBase   uint64
	rdOff    int64
	rdFile   *os.File // open segment rdBase, for reading
	rdBuf    []byte   // bytes of rdFile from rdBufOff on
	rdBufOff int64
}

// openSpool opens (creating) the spool in dir, repairs a torn last record,
// and positions reading at the first record not yet settled.
func openSpool(dir string, opts spoolOptions, log telegraf.Logger) (*spool, spoolStats, error) {
	var st spoolStats
	if opts.maxSize <= 0 {
		return nil, st, fmt.Errorf("spool size %d must be positive", opts.maxSize)
	}
	if opts.segmentSize <= 0 {
		opts.segmentSize = min(max(opts.maxSize/16, minSegmentSize), maxSegmentSize)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, st, fmt.Errorf("creating spool directory: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, st, fmt.Errorf("locking spool directory %s: %w", dir, err)
	}
	s := &spool{dir: dir, opts: opts, log: log, unlock: unlock}
	if err := s.load(&st); err != nil {
		return nil, st, errors.Join(err, unlock())
	}
	st.bytes = s.size
	st.unsettled = s.unsettledLocked()
	return s, st, nil
}

func (s *spool) load(st *spoolStats) error {
	head, err := readHead(filepath.Join(s.dir, headFile))
	if err != nil {
		// A damaged head only costs duplicates: start from the oldest record.
		s.log.Warnf("Spool %s: %v; resending everything still in the spool", s.dir, err)
		st.headWasBroken = true
	}
	s.head, s.savedHead = head, head

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("reading spool directory: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || e.IsDir() {
			continue
		}
		base, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue // not ours
		}
		s.segs = append(s.segs, &segment{base: base, path: filepath.Join(s.dir, e.Name())})
	}
	slices.SortFunc(s.segs, func(a, b *segment) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})
	for i, seg := range s.segs {
		if err := s.scan(seg, i == len(s.segs)-1, st); err != nil {
			return err
		}
		// Overlapping segments cannot come from this code; trust the later
		// one's numbering and keep the earlier one's records.
		if i > 0 && s.segs[i-1].end() > seg.base {
			return fmt.Errorf("spool segments %s and %s overlap", s.segs[i-1].path, seg.path)
		}
		s.size += seg.size
	}
	if n := len(s.segs); n > 0 {
		s.next = s.segs[n-1].end()
	}
	s.next = max(s.next, s.head)
	s.rdSeq = s.head
	// Whatever is settled is garbage now.
	return s.removeSettledLocked()
}

// scan counts a segment's records and cuts the file at the first one that
// does not decode: in the last segment that is a write torn by a crash, in
// an older one damage (reported as an error: those records are lost).
func (s *spool) scan(seg *segment, last bool, st *spoolStats) error {
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return fmt.Errorf("reading spool segment: %w", err)
	}
	off := 0
	for off < len(data) {
		_, n, err := decodeRecord(data[off:])
		if err != nil {
			bad := int64(len(data) - off)
			switch {
			case last && errors.Is(err, errTornRecord):
				s.log.Warnf("Spool %s: the last record was cut off by a crash; removed its %d byte(s)", seg.path, bad)
				st.cut += bad
			default:
				s.log.Errorf("Spool %s: %v at byte %d; the %d byte(s) from there on are lost", seg.path, err, off, bad)
				st.damaged += bad
				st.damagedSegs++
			}
			if err := os.Truncate(seg.path, int64(off)); err != nil {
				return fmt.Errorf("repairing spool segment: %w", err)
			}
			break
		}
		off += n
		seg.count++
	}
	seg.size = int64(off)
	return nil
}

func readHead(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading spool head: %w", err)
	}
	head, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("spool head %q unreadable: %w", b, err)
	}
	return head, nil
}

// unsettledLocked counts the records at or after head.
func (s *spool) unsettledLocked() int {
	n := uint64(0)
	for _, seg := range s.segs {
		if seg.end() > s.head {
			n += seg.end() - max(seg.base, s.head)
		}
	}
	return int(n)
}

// unsettled is the number of records not yet settled.
func (s *spool) unsettled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsettledLocked()
}

// readPosition is the sequence number of the next record read would return
// (or a later one): every record below it has been handed out.
func (s *spool) readPosition() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rdSeq
}

// bytes is the size of all segment files.
func (s *spool) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// append writes the payloads as records and fsyncs them; only then can
// read return them. If they do not fit, the oldest segments are dropped
// first (as Telegraf's own buffer drops its oldest metrics when full),
// with a warning that counts the records lost.
func (s *spool) append(payloads [][]byte) error {
	if len(payloads) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	buf := s.scratch[:0]
	for _, p := range payloads {
		buf = appendRecord(buf, p)
	}
	s.scratch = buf
	if s.size+int64(len(buf)) > s.opts.maxSize {
		s.makeRoomLocked(int64(len(buf)))
	}
	if s.active == nil || s.segs[len(s.segs)-1].size >= s.opts.segmentSize {
		if err := s.rollLocked(); err != nil {
			return err
		}
	}
	seg := s.segs[len(s.segs)-1]
	if _, err := s.active.Write(buf); err != nil {
		return s.takeBackLocked(seg, fmt.Errorf("writing spool segment: %w", err))
	}
	if err := s.active.Sync(); err != nil {
		return s.takeBackLocked(seg, fmt.Errorf("syncing spool segment: %w", err))
	}
	seg.size += int64(len(buf))
	seg.count += uint64(len(payloads))
	s.size += int64(len(buf))
	s.next += uint64(len(payloads))
	return nil
}

// takeBackLocked cuts a failed append off the active segment, so that it
// stays a run of whole records that later appends can continue.
func (s *spool) takeBackLocked(seg *segment, err error) error {
	if terr := s.active.Truncate(seg.size); terr != nil {
		return fmt.Errorf("%w; taking back the partial append: %w", err, terr)
	}
	return err
}

// makeRoomLocked drops the oldest segments until need more bytes fit or only
// the one being appended to is left (a new one is started so that even it
// can go).
func (s *spool) makeRoomLocked(need int64) {
	if len(s.segs) == 1 && s.segs[0].count > 0 {
		if err := s.rollLocked(); err != nil {
			s.log.Errorf("Spool %s: %v", s.dir, err)
			return
		}
	}
	var lost, inMemory uint64
	for s.size+need > s.opts.maxSize && len(s.segs) > 1 {
		seg := s.segs[0]
		from := max(seg.base, s.head)
		if seg.end() > from {
			// Records already handed out (below rdSeq) are in the agent's
			// memory and may still be delivered; the others are gone.
			read := min(max(s.rdSeq, from), seg.end())
			inMemory += read - from
			lost += seg.end() - read
		}
		if err := s.removeSegmentLocked(0); err != nil {
			s.log.Errorf("Spool %s: %v", s.dir, err)
			return
		}
	}
	s.dropped += lost + inMemory
	if lost+inMemory > 0 {
		s.log.Warnf("Spool %s is full (%d bytes): dropped the oldest %d metric(s) not yet delivered "+
			"(%d never sent and lost, %d now only in memory); %d dropped since start",
			s.dir, s.opts.maxSize, lost+inMemory, lost, inMemory, s.dropped)
	}
}

// rollLocked starts a new segment for appends.
func (s *spool) rollLocked() error {
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			return fmt.Errorf("closing spool segment: %w", err)
		}
		s.active = nil
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].count == 0 && s.segs[n-1].base == s.next {
		// An empty last segment (left by a crash, or cut to nothing) is
		// reused rather than followed by another one with the same name.
		seg := s.segs[n-1]
		f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening spool segment: %w", err)
		}
		s.active = f
		return nil
	}
	seg := &segment{base: s.next, path: filepath.Join(s.dir, fmt.Sprintf("%020d%s", s.next, segmentSuffix))}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating spool segment: %w", err)
	}
	// The new name must survive a crash before any record in it counts.
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("syncing spool directory: %w", err)
	}
	s.segs = append(s.segs, seg)
	s.active = f
	return nil
}

// removeSegmentLocked deletes segment i.
func (s *spool) removeSegmentLocked(i int) error {
	seg := s.segs[i]
	if s.rdFile != nil && s.rdBase == seg.base {
		_ = s.rdFile.Close()
		s.rdFile = nil
	}
	if i == len(s.segs)-1 && s.active != nil {
		_ = s.active.Close()
		s.active = nil
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing spool segment: %w", err)
	}
	s.size -= seg.size
	s.segs = slices.Delete(s.segs, i, i+1)
	return nil
}

// removeSettledLocked deletes the segments whose records are all settled.
func (s *spool) removeSettledLocked() error {
	for len(s.segs) > 0 && s.segs[0].end() <= s.head {
		if err := s.removeSegmentLocked(0); err != nil {
			return err
		}
	}
	return nil
}

// read returns up to max records from the read position on, in order, and
// moves the position past them. Records are returned only once fsynced.
func (s *spool) read(maxRecords int) ([]spooled, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSpoolClosed
	}
	var out []spooled
	for len(out) < maxRecords {
		seg := s.locateLocked()
		if seg == nil {
			return out, nil
		}
		if s.rdBase != seg.base || s.rdFile == nil {
			if s.rdFile != nil {
				_ = s.rdFile.Close()
			}
			f, err := os.Open(seg.path)
			if err != nil {
				return out, fmt.Errorf("opening spool segment: %w", err)
			}
			s.rdFile, s.rdBase, s.rdOff = f, seg.base, 0
			s.rdBuf = s.rdBuf[:0]
			// Skip to rdSeq: records before it were handed out already or
			// are settled.
			for seq := seg.base; seq < s.rdSeq; seq++ {
				_, n, err := s.recordAtLocked(seg)
				if err != nil {
					return out, s.skipDamagedLocked(seg, err)
				}
				s.rdOff += int64(n)
			}
		}
		payload, n, err := s.recordAtLocked(seg)
		if err != nil {
			return out, s.skipDamagedLocked(seg, err)
		}
		out = append(out, spooled{seq: s.rdSeq, payload: payload})
		s.rdOff += int64(n)
		s.rdSeq++
	}
	return out, nil
}

// skipDamagedLocked: a record that does not decode (damaged on disk while
// running) would stop every later read at it. As at start-up, the records
// from it to the segment's end as it is now are lost, with an error; reading
// goes on at that end, where later appends to the segment begin. Other
// errors (a failed read) are returned for the next read to try again.
func (s *spool) skipDamagedLocked(seg *segment, err error) error {
	if !errors.Is(err, errCorruptRecord) && !errors.Is(err, errTornRecord) {
		return err
	}
	lost := seg.end() - s.rdSeq
	s.log.Errorf("Spool %s: %v; the %d record(s) from there to the segment's end are lost", seg.path, err, lost)
	s.dropped += lost
	s.rdSeq, s.rdOff = seg.end(), seg.size
	s.rdBuf = s.rdBuf[:0]
	return nil
}

// locateLocked returns the segment holding rdSeq, moving rdSeq past records
// dropped or settled; nil when everything synced has been read.
func (s *spool) locateLocked() *segment {
	s.rdSeq = max(s.rdSeq, s.head)
	for _, seg := range s.segs {
		if s.rdSeq < seg.base {
			s.rdSeq = seg.base // the records before were dropped
		}
		if s.rdSeq < seg.end() {
			return seg
		}
	}
	return nil
}

// recordAtLocked decodes the record at rdOff of the open segment, from the
// chunk read last when it holds the whole record. The payload is a copy.
func (s *spool) recordAtLocked(seg *segment) ([]byte, int, error) {
	avail := seg.size - s.rdOff
	if avail <= 0 {
		return nil, 0, fmt.Errorf("spool segment %s: no record at byte %d", seg.path, s.rdOff)
	}
	if rel := s.rdOff - s.rdBufOff; rel >= 0 && rel < int64(len(s.rdBuf)) {
		payload, n, err := decodeRecord(s.rdBuf[rel:])
		if err == nil {
			return slices.Clone(payload), n, nil
		}
		if !errors.Is(err, errTornRecord) {
			return nil, 0, fmt.Errorf("spool segment %s at byte %d: %w", seg.path, s.rdOff, err)
		}
	}
	want := min(avail, int64(readChunk))
	for {
		if int64(cap(s.rdBuf)) < want || cap(s.rdBuf) > 2*readChunk {
			// A chunk, or one record larger than that; a huge buffer from
			// an earlier huge record is not kept.
			s.rdBuf = make([]byte, want)
		}
		s.rdBuf, s.rdBufOff = s.rdBuf[:want], s.rdOff
		if _, err := s.rdFile.ReadAt(s.rdBuf, s.rdOff); err != nil {
			s.rdBuf = s.rdBuf[:0]
			return nil, 0, fmt.Errorf("reading spool segment: %w", err)
		}
		payload, n, err := decodeRecord(s.rdBuf)
		if errors.Is(err, errTornRecord) && want < avail {
			want = avail // a record larger than one chunk
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("spool segment %s at byte %d: %w", seg.path, s.rdOff, err)
		}
		return slices.Clone(payload), n, nil
	}
}

// advance records that every record below head is settled: the head is
// saved and the segments wholly below it are deleted.
func (s *spool) advance(head uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	return s.advanceLocked(head)
}

func (s *spool) advanceLocked(head uint64) error {
	if head > s.head {
		s.head = min(head, s.next)
	}
	if s.head == s.savedHead {
		return nil
	}
	if err := writeFileAtomic(s.dir, headFile, []byte(strconv.FormatUint(s.head, 10)+"\n")); err != nil {
		return err
	}
	s.savedHead = s.head
	return s.removeSettledLocked()
}

// close saves head (if it moved) and releases the directory.
func (s *spool) close(head uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	err := s.advanceLocked(head)
	s.closed = true
	for _, f := range []*os.File{s.active, s.rdFile} {
		if f != nil {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing spool segment: %w", cerr)
			}
		}
	}
	if uerr := s.unlock(); uerr != nil && err == nil {
		err = fmt.Errorf("unlocking spool directory: %w", uerr)
	}
	return err
}

// writeFileAtomic replaces dir/name so that a crash leaves the old or the
// new content, never a mix.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("saving spool %s: %w", name, err)
	}
	return nil
}
