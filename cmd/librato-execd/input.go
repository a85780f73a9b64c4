package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
)

// maxLineBytes bounds one input line so that garbage without newlines cannot
// exhaust memory; longer lines are skipped with an error. A variable for tests.
var maxLineBytes = 64 << 20

// lineReader reads newline-terminated lines of any length up to maxLineBytes
// (bufio.Scanner would stop at 64 KiB).
type lineReader struct {
	br   *bufio.Reader
	line int // number of the last line returned, 1-based
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its line ending. Each line is a fresh
// slice: the parser may keep references into it. tooLong reports a skipped
// over-long line. err is io.EOF after the last line.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	var buf []byte
	got := false
	for {
		frag, err := lr.br.ReadSlice('\n')
		if len(frag) > 0 {
			got = true
			if !tooLong && len(buf)+len(frag) > maxLineBytes+2 {
				tooLong, buf = true, nil
			}
			if !tooLong {
				buf = append(buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if !got {
			return nil, false, err
		}
		lr.line++
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if err != nil && !errors.Is(err, io.EOF) {
			return buf, tooLong, err
		}
		// A last line without newline is still a line; EOF comes next call.
		return buf, tooLong, nil
	}
}

// lineParser turns influx line protocol into metrics, keeping the types
// (uint64 fields stay uint64).
type lineParser struct {
	p influx.Parser
}

func newLineParser() (*lineParser, error) {
	lp := &lineParser{}
	if err := lp.p.Init(); err != nil {
		return nil, err
	}
	return lp, nil
}

// parse returns the metrics of one line; blank and comment lines give none.
func (lp *lineParser) parse(line []byte) ([]telegraf.Metric, error) {
	return lp.p.Parse(line)
}

// readMetrics reads stdin until EOF or done, sending each parsed metric on
// out and closing it at the end.
func readMetrics(r io.Reader, out chan<- telegraf.Metric, done <-chan struct{}, log telegraf.Logger) {
	defer close(out)
	scanMetrics(r, log, func(metrics []telegraf.Metric, _ bool) bool {
		for _, m := range metrics {
			select {
			case out <- m:
			case <-done:
				return false
			}
		}
		return true
	})
}

// scanMetrics reads r until EOF and calls emit with the metrics of each
// line; a malformed line is logged with its number and skipped. idle is true
// when no more input is buffered, so the next read may block (and at EOF,
// with no metrics): the moment to make what was read durable. emit
// returning false stops the scan.
func scanMetrics(r io.Reader, log telegraf.Logger, emit func(metrics []telegraf.Metric, idle bool) bool) {
	parser, err := newLineParser()
	if err != nil {
		log.Errorf("creating the influx parser: %v", err)
		return
	}
	lr := newLineReader(r)
	for {
		line, tooLong, err := lr.next()
		var metrics []telegraf.Metric
		if line != nil || tooLong {
			switch {
			case tooLong:
				log.Errorf("line %d: longer than %d bytes, skipped", lr.line, maxLineBytes)
			default:
				var perr error
				metrics, perr = parser.parse(line)
				if perr != nil {
					log.Errorf("line %d: %v", lr.line, perr)
				}
			}
		}
		idle := err != nil || lr.br.Buffered() == 0
		if (len(metrics) > 0 || idle) && !emit(metrics, idle) {
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Errorf("reading stdin: %v", err)
			}
			return
		}
	}
}
