package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// OpenInput opens a JSONL input: a file path, or "-" for standard input.
// Gzip is detected from its magic bytes, so "events.jsonl.gz" and a gzip
// stream on stdin both work.
func OpenInput(path string) (io.ReadCloser, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		f, err = os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening input: %w", err)
		}
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening gzip input: %w", err)
		}
		return &readCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	}
	return &readCloser{Reader: br, close: f.Close}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// LineReader splits input into lines without copying. A line longer than
// max is returned truncated with Truncated set, so the caller can reject it
// as too large and carry on.
type LineReader struct {
	br        *bufio.Reader
	max       int
	line      int
	Truncated bool
}

// NewLineReader reads lines of at most max bytes from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, max+1), max: max}
}

// Next returns the next line without its newline (and without a trailing
// "\r"), valid until the next call, or io.EOF.
func (l *LineReader) Next() ([]byte, error) {
	l.Truncated = false
	line, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.Truncated = true
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = l.br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading line %d: %w", l.line+1, err)
		}
		l.line++
		return nil, nil // content was overwritten while skipping; callers check Truncated
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			l.line++
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading line %d: %w", l.line+1, err)
	}
	l.line++
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// Line is the 1-based number of the line Next last returned.
func (l *LineReader) Line() int { return l.line }
