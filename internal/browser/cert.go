package browser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCert is the test binary's certificate, in the forms its users want.
type testCert struct {
	cert              *x509.Certificate
	pair              tls.Certificate
	certFile, keyFile string
}

var (
	certOnce sync.Once
	theCert  testCert
	certErr  error
)

// makeTestCert makes, once per test binary, a self-signed ECDSA certificate
// for 127.0.0.1, ::1 and localhost, valid for a day, and writes it and its key
// as PEM files in a temporary directory.
func makeTestCert() (testCert, error) {
	certOnce.Do(func() { theCert, certErr = newTestCert() })
	return theCert, certErr
}

func newTestCert() (testCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testCert{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "herald browser tests"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testCert{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return testCert{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return testCert{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return testCert{}, err
	}
	dir, err := os.MkdirTemp("", "herald-testcert-")
	if err != nil {
		return testCert{}, err
	}
	c := testCert{cert: cert, pair: pair, certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(c.certFile, certPEM, 0o600); err != nil {
		return testCert{}, err
	}
	if err := os.WriteFile(c.keyFile, keyPEM, 0o600); err != nil {
		return testCert{}, err
	}
	return c, nil
}

// removeTestCert removes the files of the test certificate, if made.
func removeTestCert() {
	if theCert.certFile != "" {
		os.RemoveAll(filepath.Dir(theCert.certFile))
	}
}

// TestCert returns the PEM files of the test binary's certificate and key
// (self-signed, for 127.0.0.1, ::1 and localhost), which the shared browser
// trusts: give them to herald serve's -tls-cert and -tls-key. [Main] removes
// them.
func TestCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	c, err := makeTestCert()
	if err != nil {
		t.Fatal(fmt.Errorf("browser: the test certificate: %w", err))
	}
	return c.certFile, c.keyFile
}

// TestTLSConfig returns a TLS configuration that serves the test binary's
// certificate, for a test's own HTTPS server (httptest's StartTLS), and
// offers HTTP/2 and HTTP/1.1.
func TestTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	c, err := makeTestCert()
	if err != nil {
		t.Fatal(fmt.Errorf("browser: the test certificate: %w", err))
	}
	return &tls.Config{Certificates: []tls.Certificate{c.pair}, NextProtos: []string{"h2", "http/1.1"}}
}

// TestCertPool returns a pool holding the test certificate, for a Go client
// of a server that uses it.
func TestCertPool(t testing.TB) *x509.CertPool {
	t.Helper()
	c, err := makeTestCert()
	if err != nil {
		t.Fatal(fmt.Errorf("browser: the test certificate: %w", err))
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	return pool
}
