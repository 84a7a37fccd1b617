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

// forward accepts connections on ln, dials addr for each and hands both
// ends to pipe. It returns what closes the listener and every connection
// (also run at the test's end).
func forward(t *testing.T, ln net.Listener, addr string, pipe func(client, server net.Conn)) (closeAll func()) {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	closeAll = func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(closeAll)
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
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			pipe(c, s)
		}
	}()
	return closeAll
}

// stallingProxy forwards to addr and, after bytes from a client, stops
// reading from it (the connection stays open): a server that hangs
// mid-insert, or a network that drops every segment without a reset. It
// returns its address and what closes it.
func stallingProxy(t *testing.T, addr string, after int64) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), forward(t, ln, addr, func(c, s net.Conn) {
		go io.Copy(c, s)         //nolint:errcheck // ends with the connections
		go io.CopyN(s, c, after) //nolint:errcheck // then reads no more
	})
}

// TestInsertToAServerThatStopsReading: the server stops taking the
// insert's bytes after its first 64 KiB. The insert fails once a write has
// waited clickhouse.write_timeout, instead of hanging (clickhouse-go sets
// no write deadline, and watches the context only while it sends the last
// block), and nothing is stored.
func TestInsertToAServerThatStopsReading(t *testing.T) {
	s, _ := migrated(t, nil)
	proxyAddr, closeProxy := stallingProxy(t, s.TCPAddr, 64<<10)
	cfg := chtest.Config(s, chserver.User{})
	cfg.Addr = []string{proxyAddr}
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
	closeProxy()
	time.Sleep(500 * time.Millisecond)
	if st := readStored(t, s); st != (stored{}) {
		t.Errorf("stored after a failed insert: %+v", st)
	}
}
