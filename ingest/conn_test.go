package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// A broker connection read through the large buffer delivers the same
// bytes, in order, whatever the reads' sizes, and honours deadlines.
func TestBufferedConnReadsEveryByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 3*fetchReadBuffer+12345)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for rest := payload; len(rest) > 0; {
			n := min(len(rest), 7000)
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		io.Copy(io.Discard, c) // hold the connection open until the client closes
	}()
	c, err := dialBuffered(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for sizes := []int{1, 4096, 100, 3000, 4096}; got.Len() < len(payload); sizes = append(sizes[1:], sizes[0]) {
		n, err := c.Read(buf[:sizes[0]])
		got.Write(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Fatal("bytes differ")
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past a deadline: %v", err)
	}
}

// TLS (kafka.tls) runs over the buffered connection.
func TestBufferedConnCarriesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 2*fetchReadBuffer))
	}))
	defer srv.Close()
	raw, err := dialBuffered(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "example.com"})
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte("HTTP/1.0 200")) || !bytes.HasSuffix(body, bytes.Repeat([]byte("x"), 2*fetchReadBuffer)) {
		t.Fatalf("response of %d bytes: %.40q", len(body), body)
	}
}
