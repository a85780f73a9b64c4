package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A spool record is one metric as influx line protocol, framed so that a
// write torn by a crash or a flipped bit is recognised instead of replayed:
//
//	length  uint32, big endian: bytes of payload
//	crc     uint32, big endian: CRC-32C (Castagnoli) of length and payload
//	payload length bytes
//
// The CRC covers the length too, so a torn or damaged length is caught
// before it is trusted for anything but a bounds check.
const recordHeader = 8

// maxRecordPayload bounds one record; it is larger than the longest input
// line librato-execd accepts (maxLineBytes) and keeps a damaged length from
// asking for gigabytes.
const maxRecordPayload = 128 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// errTornRecord: the bytes end inside a record (a crash during an
	// append). Everything before it is intact.
	errTornRecord = errors.New("spool record cut off")
	// errCorruptRecord: a record's checksum or length is wrong.
	errCorruptRecord = errors.New("spool record damaged")
)

// appendRecord appends the framed payload to dst.
func appendRecord(dst, payload []byte) []byte {
	var h [recordHeader]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(payload)))
	crc := crc32.Update(0, crcTable, h[:4])
	crc = crc32.Update(crc, crcTable, payload)
	binary.BigEndian.PutUint32(h[4:], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// decodeRecord decodes the record at the start of b. It returns the payload
// (a sub-slice of b) and the bytes the record takes. An error is
// errTornRecord when b ends before the record does and errCorruptRecord
// when the record cannot be trusted; n is then 0.
func decodeRecord(b []byte) (payload []byte, n int, err error) {
	if len(b) < recordHeader {
		return nil, 0, errTornRecord
	}
	size := binary.BigEndian.Uint32(b[:4])
	if size > maxRecordPayload {
		return nil, 0, fmt.Errorf("%w: length %d over the limit", errCorruptRecord, size)
	}
	end := recordHeader + int(size)
	if len(b) < end {
		return nil, 0, errTornRecord
	}
	crc := crc32.Update(0, crcTable, b[:4])
	crc = crc32.Update(crc, crcTable, b[recordHeader:end])
	if crc != binary.BigEndian.Uint32(b[4:8]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errCorruptRecord)
	}
	return b[recordHeader:end], end, nil
}
