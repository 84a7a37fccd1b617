package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// FileSource reads an event-v1 JSONL file, plain or gzip, or standard
// input ("-"), as one partition: Topic is the path, Offset the line number.
// It is the source of `declinemon replay`; the pipeline treats it like a
// Kafka partition, so replay and live detection share one path.
type FileSource struct {
	path  string
	in    io.ReadCloser
	lines *LineReader
	topic []byte
	n     int
}

// OpenFile opens path ("-" for stdin) with lines of at most maxBytes.
func OpenFile(path string, maxBytes int) (*FileSource, error) {
	in, err := OpenInput(path)
	if err != nil {
		return nil, err
	}
	return &FileSource{path: path, in: in, lines: NewLineReader(in, maxBytes), topic: []byte(path)}, nil
}

// Fetch returns the next non-empty line, io.EOF at the end, or ctx's error
// (checked every 4096 lines, so replay stays fast).
func (f *FileSource) Fetch(ctx context.Context) (Message, error) {
	for {
		f.n++
		if f.n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return Message{}, err
			}
		}
		line, err := f.lines.Next()
		if err != nil {
			return Message{}, err
		}
		if len(line) == 0 && !f.lines.Truncated {
			continue
		}
		return Message{Value: line, Topic: f.path, Offset: int64(f.lines.Line()), HighWaterMark: -1,
			OriginTopic: f.topic, TooLarge: f.lines.Truncated}, nil
	}
}

// Commit does nothing: a file has no consumer group.
func (f *FileSource) Commit(context.Context, []Position) error { return nil }

// Line is the 1-based number of the line Fetch last returned.
func (f *FileSource) Line() int { return f.lines.Line() }

// Name is the path the source reads.
func (f *FileSource) Name() string { return f.path }

// Close closes the input.
func (f *FileSource) Close() error { return f.in.Close() }

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
