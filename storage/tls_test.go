package storage_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/declinemon/declinemon/storage"
)

// tlsProxy terminates TLS for 127.0.0.1 with a certificate of its own
// authority and forwards the plain bytes to addr (the server here has no
// TLS listener). It returns its address and the authority's pool.
func tlsProxy(t *testing.T, addr string) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clickhouse test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	forward(t, ln, addr, func(c, s net.Conn) {
		go func() { io.Copy(s, c); s.Close() }() //nolint:errcheck // ends with the connections
		go func() { io.Copy(c, s); c.Close() }() //nolint:errcheck // ends with the connections
	})
	return ln.Addr().String(), pool
}

// TestTLSDialToTheServer: the client's dialer (what clickhouse.tls uses,
// with the system's authorities) speaks TLS to a proxy in front of the
// real server, checks its certificate against the address it dialled, and
// an insert goes through; a certificate the authorities do not vouch for
// is refused.
func TestTLSDialToTheServer(t *testing.T) {
	s, _ := migrated(t, nil)
	addr, pool := tlsProxy(t, s.TCPAddr)
	open := func(roots *x509.CertPool) clickhouse.Conn {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
			DialContext: storage.Dialer(5*time.Second, 5*time.Second, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx := context.Background()
	conn := open(pool)
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
	batch := recent(3*8192+5, 0)
	b, err := conn.PrepareBatch(ctx, "INSERT INTO declinemon.events (event_id, ts, terminal_id, merchant_id, outcome, cause)")
	if err != nil {
		t.Fatal(err)
	}
	cols := columnsOf(batch)
	for i, v := range cols.Rows(0, cols.Len())[:6] {
		if err := b.Column(i).Append(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatalf("insert over TLS: %v", err)
	}
	if st := readStored(t, s); st.events != len(batch) {
		t.Errorf("stored over TLS: %+v, want %d events", st, len(batch))
	}
	if err := open(x509.NewCertPool()).Ping(ctx); err == nil {
		t.Error("a server certificate of an unknown authority was accepted")
	}
}
