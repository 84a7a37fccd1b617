package storage_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/chserver/chtest"
	"github.com/declinemon/declinemon/storage"
)

// stallingProxy forwards one client's connections to addr and, once
// after bytes from a client, stops reading from it (the connection stays
// open): a server that hangs mid-insert, or a network that drops every
// segment without a reset.
type stallingProxy struct {
	ln    net.Listener
	after int64
	mu    sync.Mutex
	conns []net.Conn
}

func newStallingProxy(t *testing.T, addr string, after int64) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, after: after}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go io.Copy(c, s) //nolint:errcheck // ends with the connections
			go func() {
				io.CopyN(s, c, p.after) //nolint:errcheck // then reads no more
			}()
		}
	}()
	return p
}

func (p *stallingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestInsertToAServerThatStopsReading: the server stops taking the
// insert's bytes after its first 64 KiB. The insert fails once a write has
// waited clickhouse.write_timeout, instead of hanging (clickhouse-go sets
// no write deadline, and watches the context only while it sends the last
// block), and nothing is stored.
func TestInsertToAServerThatStopsReading(t *testing.T) {
	s, _ := migrated(t, nil)
	proxy := newStallingProxy(t, s.TCPAddr, 64<<10)
	cfg := chtest.Config(s, chserver.User{})
	cfg.Addr = []string{proxy.ln.Addr().String()}
	cfg.WriteTimeout = 2 * time.Second
	c, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := recent(40*8192, 0) // far more than the sockets' buffers hold
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Insert(context.Background(), columnsOf(batch), storage.Token(batch)) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the insert returned %v after %v, want a write deadline exceeded", err, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("the insert failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatal("the insert still hangs 30 s after the server stopped reading, with a 2 s write timeout")
	}
	proxy.close()
	time.Sleep(500 * time.Millisecond)
	if st := readStored(t, s); st != (stored{}) {
		t.Errorf("stored after a failed insert: %+v", st)
	}
}
